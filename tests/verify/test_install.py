"""``assay install``: verify, then install exactly the verified files (real pip, --target)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.verify.conftest import World, github


def gh_pin(repository: str) -> dict[str, str]:
    return {"kind": "GitHub", "repository": repository, "workflow": "release.yml"}


def _module(name: str) -> str:
    return name.replace("-", "_")


def test_installs_the_verified_wheels_into_a_target(world: World) -> None:
    one, two = world.name("one"), world.name("two")
    lock = world.lock(world.publish(one, signer=github("acme/one")), world.publish(two, signer=github("acme/two")))
    world.pin(**{one: gh_pin("acme/one"), two: gh_pin("acme/two")})
    target = world.tmp / "site"

    run = world.run("install", str(lock), "--", "--target", str(target), "--quiet", json_output=False)

    assert run.code == 0, run.text
    installed = {p.name for p in target.iterdir()}
    assert {_module(one), _module(two)} <= installed
    # The wheel was chosen (the test sdists cannot even be built).
    assert f"{_module(one)}-1.0.dist-info" in installed
    # Both files of each package were verified, not only the one installed.
    assert run.text.count("verified") >= 4


def test_installs_nothing_when_verification_fails(world: World) -> None:
    good, bad = world.name("good"), world.name("bad")
    lock = world.lock(world.publish(good, signer=github("acme/good")), world.publish(bad, signer=github("evil/bad")))
    world.pin(**{good: gh_pin("acme/good"), bad: gh_pin("acme/bad")})
    target = world.tmp / "site"

    run = world.run("install", str(lock), "--", "--target", str(target), json_output=False)

    assert run.code == 1
    assert "nothing was installed" in run.result.stderr
    assert not target.exists()


def test_a_file_that_changed_after_verification_is_not_installed(world: World) -> None:
    """The index swaps the bytes behind the URL: the streamed sha256 no longer matches the
    lock, and pip is never run."""
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    lock = world.lock(files)
    world.pin(**{name: gh_pin("acme/widget")})
    entry = world.index.files[files[0].filename]
    entry.listed_sha256 = entry.sha256  # the page still lists the verified hash
    entry.content = entry.content[:-1] + bytes([entry.content[-1] ^ 1])
    target = world.tmp / "site"

    run = world.run("install", str(lock), "--", "--target", str(target), json_output=False)

    assert run.code == 1
    assert "nothing was installed" in run.result.stderr
    assert "bytes" in run.result.stderr or "sha256" in run.result.stderr
    assert not target.exists()


def test_unattested_packages_install_unless_strict(world: World, tmp_path: Path) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=None))
    target = world.tmp / "site"
    strict = world.run("install", str(lock), "--strict", "--", "--target", str(target), json_output=False)
    assert strict.code == 1
    assert not target.exists()
    relaxed = world.run("install", str(lock), "--", "--target", str(target), "--quiet", json_output=False)
    assert relaxed.code == 0, relaxed.text
    assert (target / _module(name)).is_dir()


# ---------------------------------------------------------------------------------------------
# Where it installs (issue 10, items 15 and 16): the active environment, never assay's own;
# `pip freeze` usable afterwards; pip lock output, which names no index
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain virtual environment with pip, shared by this module's tests (it takes seconds
    to make; every test installs projects of its own names into it)."""
    target = tmp_path_factory.mktemp("env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    return target


def _activated(world: World, monkeypatch: pytest.MonkeyPatch, venv: Path | None, **extra: str | None) -> None:
    """Run the CLI as if ``venv`` were activated (``None``: as if no environment were)."""
    env = world.env()
    env["VIRTUAL_ENV"] = str(venv) if venv is not None else None
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}" if venv is not None else os.environ["PATH"]
    env.update(extra)
    monkeypatch.setattr(world, "env", lambda: env)


def _freeze(venv: Path) -> str:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    return proc.stdout


def _in_assays_environment(name: str) -> bool:
    return (Path(sysconfig.get_paths()["purelib"]) / _module(name)).exists()


def _pip_lock(world: World, requirement: str) -> Path:
    """A lock written by the real ``pip lock``: it records no ``packages.index``."""
    path = world.tmp / "pylock.toml"
    env = {k: v for k, v in {**os.environ, **world.env()}.items() if v is not None}
    cmd = [sys.executable, "-m", "pip", "lock", "-q", "-o", str(path), "-i", world.index.simple, requirement]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    assert "index" not in tomllib.loads(path.read_text())["packages"][0]
    return path


def test_installs_into_the_active_virtual_environment_not_assays(
    world: World, venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    world.pin(**{name: gh_pin("acme/widget")})
    _activated(world, monkeypatch, venv)

    run = world.run("install", str(lock), json_output=False)

    assert run.code == 0, run.text
    assert f"installing 1 verified file(s) into {venv} (from VIRTUAL_ENV" in run.result.stderr
    assert not _in_assays_environment(name)
    frozen = _freeze(venv)
    # Recorded as from an index, not as a direct URL into the deleted temporary directory.
    assert f"{name}==1.0" in frozen.splitlines()
    assert "file://" not in frozen
    assert not list(venv.glob(f"lib/python*/site-packages/{_module(name)}-1.0.dist-info/direct_url.json"))


def test_python_option_chooses_the_environment(world: World, venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget"), kinds=("wheel",)))
    world.pin(**{name: gh_pin("acme/widget")})
    _activated(world, monkeypatch, None)

    run = world.run("install", str(lock), "--python", str(venv / "bin" / "python"), json_output=False)

    assert run.code == 0, run.text
    assert f"into {venv} (from --python" in run.result.stderr
    assert f"{name}==1.0" in _freeze(venv).splitlines()
    assert not _in_assays_environment(name)


def test_an_environment_without_pip_is_refused_before_anything_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = world.tmp / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget"), kinds=("wheel",)))
    _activated(world, monkeypatch, bare)
    requests_before = len(world.index.requests)

    run = world.run("install", str(lock), json_output=False)

    assert run.code == 2
    assert f"{bare / 'bin' / 'python'} (from VIRTUAL_ENV) has no pip" in run.result.stderr
    assert "--python" in run.result.stderr
    assert len(world.index.requests) == requests_before  # nothing was even verified


def test_pip_lock_output_takes_its_index_from_index_url(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.pin(**{name: gh_pin("acme/widget")})
    lock = _pip_lock(world, f"{name}==1.0")
    target = world.tmp / "site"

    lost = world.run("install", str(lock), json_output=False)
    assert lost.code == 2
    for way in ("--index-url", "PIP_INDEX_URL", "pip config set global.index-url"):
        assert way in lost.result.stderr

    assert world.verify(str(lock), "--index-url", world.index.simple).verdicts == {files[0].filename: "verified"}
    run = world.run(
        "install", str(lock), "--index-url", world.index.simple, "--", "--target", str(target), json_output=False
    )
    assert run.code == 0, run.text
    assert (target / _module(name)).is_dir()
    assert f"into {target} (--target)" in run.result.stderr


def test_the_target_pips_own_configuration_gives_the_index(
    world: World, venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment's own pip.conf (pip's "site" configuration) is read by that
    environment's pip, which assay's pip would not see."""
    name = world.name()
    world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    world.pin(**{name: gh_pin("acme/widget")})
    lock = _pip_lock(world, f"{name}==1.0")
    empty = world.tmp / "no-user-config.conf"
    empty.write_text("")  # PIP_CONFIG_FILE must exist to keep the user's config out, and not be
    # os.devnull, which would skip the site file too
    (venv / "pip.conf").write_text(f"[global]\nindex-url = {world.index.simple}\n")
    _activated(world, monkeypatch, venv, PIP_CONFIG_FILE=str(empty))
    try:
        run = world.run("install", str(lock), json_output=False)
        verified = world.verify(str(lock))
    finally:
        (venv / "pip.conf").unlink()

    assert run.code == 0, run.text
    assert f"{name}==1.0" in _freeze(venv).splitlines()
    assert set(verified.verdicts.values()) == {"verified"}  # verify asks the active pip too


def test_locating_the_interpreter(venv: Path, tmp_path: Path) -> None:
    from assay.verify import interpreters
    from assay.verify.errors import InputError

    python = str(venv / "bin" / "python")
    assert interpreters.locate(venv) == (python, "--python")  # an environment's directory
    assert interpreters.locate(None, {"VIRTUAL_ENV": str(venv), "PATH": ""}) == (python, "VIRTUAL_ENV")
    assert interpreters.locate(None, {"PATH": str(venv / "bin")}) == (str(venv / "bin" / "python3"), "PATH")
    with pytest.raises(InputError, match="but there is no"):
        interpreters.locate(None, {"VIRTUAL_ENV": str(tmp_path / "gone"), "PATH": ""})
    with pytest.raises(InputError, match="no VIRTUAL_ENV, no python3 or python on PATH"):
        interpreters.locate(None, {"PATH": str(tmp_path)})
