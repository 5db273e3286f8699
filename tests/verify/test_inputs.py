"""Inputs (PEP 751 locks, hash-pinned requirements, ``pip lock``, explicit files), pins files,
``--write-lock-identities`` and ``assay pins``; usage and input errors exit 2."""

from __future__ import annotations

import json
import tomllib

import pytest

from tests.verify.conftest import World, github


def gh_pin(repository: str = "acme/widget", workflow: str = "release.yml") -> dict[str, str]:
    return {"kind": "GitHub", "repository": repository, "workflow": workflow}


# ---------------------------------------------------------------------------------------------
# Locks
# ---------------------------------------------------------------------------------------------


def _lock_text(name: str, hashes: str, index: str | None) -> str:
    index_line = f'index = "{index}"\n' if index else ""
    return (
        'lock-version = "1.0"\ncreated-by = "hand"\n\n[[packages]]\n'
        f'name = "{name}"\nversion = "1.0"\n{index_line}'
        f'[[packages.wheels]]\nname = "{name.replace("-", "_")}-1.0-py3-none-any.whl"\n'
        f'url = "https://files.invalid/{name}.whl"\nhashes = {hashes}\n'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is [not toml", "is not TOML"),
        ('name = "not a lock"\n', "is not a valid PEP 751 lock file"),
        ('lock-version = "2.0"\ncreated-by = "x"\npackages = []\n', "not supported"),
        (_lock_text("bad-hash", '{sha512 = "00"}', "https://x.invalid/simple/"), "no sha256 hash (found: sha512)"),
        (_lock_text("short-hash", '{sha256 = "abc"}', "https://x.invalid/simple/"), "is not a sha256 hex digest"),
    ],
)
def test_unusable_locks_are_input_errors(world: World, text: str, message: str) -> None:
    lock = world.tmp / "pylock.toml"
    lock.write_text(text)
    run = world.verify(str(lock), json_output=False)
    assert run.code == 2
    assert message in run.result.stderr
    assert "Traceback" not in run.result.output
    if "hash" in text:
        assert "package" in run.result.stderr  # names the package


def test_no_index_anywhere_is_a_usage_error(world: World) -> None:
    lock = world.tmp / "pylock.toml"
    lock.write_text(_lock_text("no-index", '{sha256 = "' + "a" * 64 + '"}', None))
    run = world.verify(str(lock))
    assert run.code == 2
    assert "--index-url" in run.result.stderr
    assert "no-index" in run.result.stderr


def test_index_url_serves_packages_the_lock_gives_no_index(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    lock = world.lock(files)
    text = lock.read_text().replace(f'index = "{world.index.simple}"\n', "")
    assert "index =" not in text
    lock.write_text(text)
    world.pin(**{name: gh_pin()})
    run = world.verify(str(lock), "--index-url", world.index.simple)
    assert set(run.verdicts.values()) == {"verified"}


def test_pip_index_url_is_the_last_resort(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    lock = world.lock(files)
    lock.write_text(lock.read_text().replace(f'index = "{world.index.simple}"\n', ""))
    world.pin(**{name: gh_pin()})
    env = world.env()
    env["PIP_INDEX_URL"] = world.index.simple
    monkeypatch.setattr(world, "env", lambda: env)
    assert set(world.verify(str(lock)).verdicts.values()) == {"verified"}


def test_mixing_kinds_of_input_is_a_usage_error(world: World) -> None:
    lock = world.lock(world.publish(world.name(), signer=None))
    (world.tmp / "r.txt").write_text("")
    assert world.verify(str(lock), "-r", str(world.tmp / "r.txt")).code == 2
    assert world.verify(str(world.tmp / "r.txt")).code == 2  # neither a lock nor a dist


# ---------------------------------------------------------------------------------------------
# Requirements files, explicit files, pip lock
# ---------------------------------------------------------------------------------------------


def test_requirements_with_hashes_are_found_on_the_index_by_hash(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    unknown = "f" * 64
    requirements = world.tmp / "requirements.txt"
    requirements.write_text(
        f"# generated\n{name}==1.0 \\\n    --hash=sha256:{files[0].sha256} \\\n    --hash=sha256:{files[1].sha256}\n"
    )
    world.pin(**{name: gh_pin()})
    run = world.verify("-r", str(requirements), "--index-url", world.index.simple)
    assert run.code == 0, run.doc
    assert run.verdicts == {files[0].filename: "verified", files[1].filename: "verified"}

    requirements.write_text(f"{name}==1.0 --hash=sha256:{files[0].sha256} --hash=sha256:{unknown}\n")
    partial = world.verify("-r", str(requirements), "--index-url", world.index.simple)
    assert partial.code == 1
    missing = next(f for f in partial.doc["files"] if f["sha256"] == unknown)
    assert missing["filename"] is None
    assert missing["verdict"] == "invalid"
    assert "no file of" in missing["reason"]


def test_requirements_can_name_their_index(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    requirements = world.tmp / "requirements.txt"
    requirements.write_text(f"--index-url {world.index.simple}\n{name}==1.0 --hash=sha256:{files[0].sha256}\n")
    world.pin(**{name: gh_pin()})
    assert world.verify("-r", str(requirements)).verdicts == {files[0].filename: "verified"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("widget==1.0 --hash=md5:0123", "is not sha256"),
        ("widget>=1.0 --hash=sha256:" + "a" * 64, "must be pinned to one version"),
        ("widget==1.0", "has no --hash"),
        ("-e ./src", "editable"),
        ("widget==1.0 --hash=sha256:xyz", "is not a sha256 hex digest"),
    ],
)
def test_unusable_requirements_are_input_errors(world: World, line: str, message: str) -> None:
    requirements = world.tmp / "requirements.txt"
    requirements.write_text(line + "\n")
    run = world.verify("-r", str(requirements), "--index-url", world.index.simple)
    assert run.code == 2
    assert message in run.result.stderr
    assert "requirements.txt:1" in run.result.stderr


def test_explicit_files_are_hashed_locally(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.pin(**{name: gh_pin()})
    run = world.verify("--index-url", world.index.simple, *(str(f.path) for f in files))
    assert run.code == 0
    assert run.verdicts == {f.filename: "verified" for f in files}
    assert {e["sha256"] for e in run.doc["files"]} == {f.sha256 for f in files}

    tampered = world.tmp / files[0].filename
    tampered.write_bytes(files[0].path.read_bytes() + b"x")
    bad = world.verify("--index-url", world.index.simple, str(tampered))
    assert bad.verdicts == {files[0].filename: "invalid"}


def test_pip_lock_arguments_after_a_double_dash(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.pin(**{name: gh_pin()})
    run = world.verify("--", "--index-url", world.index.simple, f"{name}==1.0")
    assert run.code == 0, (run.result.stderr, run.result.stdout)
    # pip lock picks one file (the wheel) for this interpreter; that is what gets checked.
    assert run.verdicts == {files[0].filename: "verified"}


def test_pip_lock_failure_is_an_input_error(world: World) -> None:
    run = world.verify("--", "--index-url", world.index.simple, "no-such-project-here==1.0")
    assert run.code == 2
    assert "pip lock failed" in run.result.stderr


# ---------------------------------------------------------------------------------------------
# Pins files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[packages.w]\nkind = 'GitHub'\nrepository = 'a/b'\n", "missing workflow"),
        ("[packages.w]\nkind = 'GitHub'\nrepository = 'a/b'\nworkflow = 'r.yml'\nrepo = 'x'\n", "unknown key 'repo'"),
        ("[packages.w]\nkind = 'Nope'\n", "needs a kind"),
        ("[packages.w\n", "not a readable TOML pins file"),
        ("[other]\n", "unknown top-level key"),
    ],
)
def test_unusable_pins_are_input_errors(world: World, text: str, message: str) -> None:
    world.pins_path.write_text(text)
    lock = world.lock(world.publish(world.name(), signer=None))
    run = world.verify(str(lock))
    assert run.code == 2
    assert message in run.result.stderr


def test_gitlab_pins_accept_workflow_as_an_alias(world: World) -> None:
    from assay.publishers import GitLab
    from tests.support.sigstore_authority import CertIdentity

    name = world.name()
    files = world.publish(name, kinds=("wheel",))
    f = files[0]
    world.index.set_provenance(
        f.filename, world.attest(f.filename, f.sha256, CertIdentity.gitlab("grp/w"), GitLab("grp/w", ".gitlab-ci.yml"))
    )
    world.pin(**{name: {"kind": "GitLab", "repository": "grp/w", "workflow": ".gitlab-ci.yml"}})
    assert world.verify(str(world.lock(files))).verdicts == {f.filename: "verified"}


def test_legacy_pins_with_an_unknown_host_are_input_errors(world: World) -> None:
    (world.tmp / ".provenance.txt").write_text("widget https://example.com/acme/widget\n")
    lock = world.lock(world.publish(world.name(), signer=None))
    run = world.verify(str(lock))
    assert run.code == 2
    assert ".provenance.txt:1" in run.result.stderr


# ---------------------------------------------------------------------------------------------
# --write-lock-identities and the lock's identities as pins
# ---------------------------------------------------------------------------------------------


def test_write_lock_identities_records_them_and_later_runs_enforce_them(world: World) -> None:
    one, two = world.name("one"), world.name("two")
    lock = world.lock(world.publish(one, signer=github("acme/one")), world.publish(two, signer=None))
    run = world.verify(str(lock), "--tofu", "--write-lock-identities")
    assert run.code == 0
    packages = {p["name"]: p for p in tomllib.loads(lock.read_text())["packages"]}
    assert packages[one]["attestation-identities"] == [gh_pin("acme/one")]
    assert "attestation-identities" not in packages[two]  # unattested: nothing to record

    # Without any pins file, the lock's identities are the pins.
    world.pins_path.unlink()
    assert set(world.verify(str(lock)).verdicts.values()) >= {"verified"}
    for f in world.index.files.values():
        if f.project == one:
            f.provenance = world.attest(f.filename, f.sha256, *github("acme/evil"))
    changed = world.verify(str(lock))
    assert {v for k, v in changed.verdicts.items() if k.startswith(one.replace("-", "_"))} == {"identity-changed"}


def test_write_lock_identities_needs_a_lock(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=None, kinds=("wheel",))
    run = world.verify("--index-url", world.index.simple, "--write-lock-identities", str(files[0].path))
    assert run.code == 2


# ---------------------------------------------------------------------------------------------
# assay pins diff / update
# ---------------------------------------------------------------------------------------------


def test_pins_diff_shows_and_update_applies_explicitly(world: World) -> None:
    moved, new, same = world.name("moved"), world.name("new"), world.name("same")
    lock = world.lock(
        world.publish(moved, signer=github("acme/moved-here")),
        world.publish(new, signer=github("acme/new")),
        world.publish(same, signer=github("acme/same")),
    )
    world.pin(**{moved: gh_pin("acme/moved"), same: gh_pin("acme/same")})
    pins_before = world.pins_path.read_text()

    diff = world.run("pins diff", "--lock", str(lock), json_output=False)
    assert diff.code == 1
    assert f"~ {moved}: GitHub acme/moved release.yml -> GitHub acme/moved-here release.yml" in diff.text
    assert f"+ {new}: attested by GitHub acme/new release.yml" in diff.text
    assert same not in diff.result.stdout
    assert world.pins_path.read_text() == pins_before  # diff changes nothing

    update = world.run("pins update", moved, "--lock", str(lock), json_output=False)
    assert update.code == 0, update.text
    pins = tomllib.loads(world.pins_path.read_text())["packages"]
    assert pins[moved] == gh_pin("acme/moved-here")
    assert new not in pins  # only what was named
    assert pins[same] == gh_pin("acme/same")

    after = world.verify(str(lock))
    assert {v for k, v in after.verdicts.items() if k.startswith(moved.replace("-", "_"))} == {"verified"}


def test_pins_update_refuses_names_outside_the_input(world: World) -> None:
    lock = world.lock(world.publish(world.name(), signer=None))
    run = world.run("pins update", "not-in-the-lock", "--lock", str(lock), json_output=False)
    assert run.code == 2
    assert "not a package of the input" in run.result.stderr


def test_pins_diff_json(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    diff = world.run("pins diff", "--lock", str(lock))
    assert diff.code == 1
    (change,) = json.loads(diff.result.stdout)
    assert change["action"] == "add"
    assert change["name"] == name
    assert change["new"] == gh_pin()


def test_pip_config_file_gives_the_index(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip config get global.index-url`, as pip itself reads its configuration."""
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    lock = world.lock(files)
    lock.write_text(lock.read_text().replace(f'index = "{world.index.simple}"\n', ""))
    world.pin(**{name: gh_pin()})
    pip_conf = world.tmp / "pip.conf"
    pip_conf.write_text(f"[global]\nindex-url = {world.index.simple}\n")
    env = world.env()
    env["PIP_CONFIG_FILE"] = str(pip_conf)
    monkeypatch.setattr(world, "env", lambda: env)
    assert world.verify(str(lock)).verdicts == {files[0].filename: "verified"}


def test_legacy_pins_record_complete_identities_in_the_lock(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget", "deploy.yml")))
    (world.tmp / ".provenance.txt").write_text(f"{name} https://github.com/acme/widget\n")
    assert world.verify(str(lock), "--write-lock-identities").code == 0
    (package,) = tomllib.loads(lock.read_text())["packages"]
    assert package["attestation-identities"] == [gh_pin("acme/widget", "deploy.yml")]
    (world.tmp / ".provenance.txt").unlink()
    assert set(world.verify(str(lock)).verdicts.values()) == {"verified"}


# ---------------------------------------------------------------------------------------------
# --pins FILE in either format, whatever its name (issue 10, item 17)
# ---------------------------------------------------------------------------------------------


def test_pins_option_reads_an_old_format_file_named_directly(world: World) -> None:
    """Someone moving from pypi-verify-now passes its file: read as what it is, and --tofu
    writes full pins to the .provenance.toml beside it (the old format cannot hold them)."""
    old, new = world.name("old"), world.name("new")
    lock = world.lock(
        world.publish(old, signer=github("acme/old", "deploy.yml")), world.publish(new, signer=github("acme/new"))
    )
    legacy = world.tmp / "old-tool" / ".provenance.txt"
    legacy.parent.mkdir()
    legacy.write_text(f"# from pypi-verify-now\n{old} https://github.com/acme/old\n")

    run = world.verify(str(lock), "--pins", str(legacy), "--tofu")

    assert run.code == 0, run.result.stderr
    by_project = {f["name"]: f["verdict"] for f in run.doc["files"]}
    assert by_project == {old: "verified", new: "pinned"}
    written = tomllib.loads((legacy.parent / ".provenance.toml").read_text())["packages"]
    assert set(written) == {new}  # the old pin stays where it was
    assert legacy.read_text().endswith(f"{old} https://github.com/acme/old\n")


def test_pins_option_reads_toml_under_any_name(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    pins = world.tmp / "pins.txt"
    pins.write_text(f'[packages.{name}]\nkind = "GitHub"\nrepository = "acme/widget"\nworkflow = "release.yml"\n')
    run = world.verify(str(lock), "--pins", str(pins))
    assert set(run.verdicts.values()) == {"verified"}, run.result.stderr


def test_an_old_format_file_with_a_bad_line_names_the_line(world: World) -> None:
    pins = world.tmp / ".provenance.txt"
    pins.write_text("widget https://github.com/acme/widget\nwidget\n")
    lock = world.lock(world.publish(world.name(), signer=None))
    run = world.verify(str(lock), "--pins", str(pins))
    assert run.code == 2
    assert ".provenance.txt:2: expected 'name repository-URL'" in run.result.stderr
