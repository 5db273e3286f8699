"""``assay install``: verify, then install exactly the verified files (real pip, --target)."""

from __future__ import annotations

from pathlib import Path

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
