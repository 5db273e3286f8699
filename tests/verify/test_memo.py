"""Check results remembered between runs (assay.verify.memo): used only when every input is
the same and the entry is authenticated by this user's key; never a way to make a check pass.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from tests.verify.conftest import Run, World, github

GOOD = {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml"}


def counts(run: Run) -> tuple[int, int]:
    """(files checked, files remembered) from the -v line."""
    match = re.search(r"(\d+) files checked in .*?, (\d+) remembered", run.result.stderr)
    assert match is not None, run.result.stderr
    return int(match[1]), int(match[2])


def entries(world: World) -> list[Path]:
    return sorted(p for p in (world.cache / "v1" / "checks").rglob("*") if p.is_file())


def key_path(world: World) -> Path:
    return world.tmp / "xdg-state" / "assay" / "verify-memo.key"


def pinned_lock(world: World, *, signer: str = "acme/widget", kinds: tuple[str, ...] = ("wheel",)) -> tuple[str, Path]:
    """A new project attested by ``signer``, locked, and pinned to acme/widget: (name, lock)."""
    name = world.name()
    lock = world.lock(world.publish(name, signer=github(signer), kinds=kinds))
    world.pin(**{name: GOOD})
    return name, lock


def test_an_unchanged_lock_is_not_checked_twice(world: World) -> None:
    _, lock = pinned_lock(world, kinds=("wheel", "sdist"))
    first = world.verify(str(lock), "-v")
    assert first.code == 0
    assert set(first.verdicts.values()) == {"verified"}
    assert counts(first) == (2, 0)
    assert len(entries(world)) == 2

    again = world.verify(str(lock), "-v")
    assert again.doc == first.doc  # the same verdicts, reasons and identities
    assert counts(again) == (0, 2)
    offline = world.verify(str(lock), "-v", "--offline")
    assert offline.doc == first.doc
    assert counts(offline) == (0, 2)

    # The key lives outside the cache, readable by its owner alone.
    key = key_path(world)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not key.is_relative_to(world.cache)


def test_a_changed_pin_is_checked_again(world: World) -> None:
    name, lock = pinned_lock(world)
    assert set(world.verify(str(lock)).verdicts.values()) == {"verified"}
    world.pin(**{name: {**GOOD, "repository": "acme/other"}})
    changed = world.verify(str(lock), "-v")
    assert set(changed.verdicts.values()) == {"identity-changed"}
    assert counts(changed) == (1, 0)


def test_a_changed_provenance_is_checked_again(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    lock = world.lock(files)
    world.pin(**{name: GOOD})
    assert set(world.verify(str(lock)).verdicts.values()) == {"verified"}
    # The index now serves provenance from another repository for the same file.
    wheel = files[0]
    world.index.set_provenance(wheel.filename, world.attest(wheel.filename, wheel.sha256, *github("evil/widget")))
    run = world.verify(str(lock), "-v")
    assert run.verdicts == {wheel.filename: "identity-changed"}
    assert counts(run) == (1, 0)


def test_another_trust_root_is_checked_again(world: World) -> None:
    _, lock = pinned_lock(world)
    assert set(world.verify(str(lock)).verdicts.values()) == {"verified"}
    # Under Sigstore's staging root the local authority's certificates do not chain.
    staging = world.verify(str(lock), "-v", trust="staging")
    assert set(staging.verdicts.values()) == {"invalid"}
    assert counts(staging) == (1, 0)


def test_a_tampered_result_is_not_believed(world: World) -> None:
    # The entry for a sound attestation by the wrong repository records why the pin failed;
    # rewriting it to say the pin was satisfied (what an attacker with write access to the
    # cache, but not to the key, would do) must not turn identity-changed into verified.
    _, lock = pinned_lock(world, signer="evil/widget")
    assert set(world.verify(str(lock)).verdicts.values()) == {"identity-changed"}
    [entry] = entries(world)
    mac, _, payload = entry.read_bytes().partition(b"\n")
    doc = json.loads(payload)
    attestation = doc["bundles"][0]["attestations"][0]
    assert attestation["pin_results"] != [None]
    attestation["pin_results"] = [None]
    entry.write_bytes(mac + b"\n" + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())

    run = world.verify(str(lock), "-v")
    assert set(run.verdicts.values()) == {"identity-changed"}
    assert counts(run) == (1, 0)


def test_a_cache_from_elsewhere_is_checked_in_full(world: World) -> None:
    # Another user's (or another CI run's) cache directory carries results under their key.
    _, lock = pinned_lock(world, kinds=("wheel", "sdist"))
    first = world.verify(str(lock))
    key_path(world).unlink()  # this machine's key is a new one now
    run = world.verify(str(lock), "-v")
    assert run.doc == first.doc
    assert counts(run) == (2, 0)
    assert "memo on" in run.result.stderr


def test_recheck_ignores_the_memo(world: World) -> None:
    _, lock = pinned_lock(world, kinds=("wheel", "sdist"))
    world.verify(str(lock))
    run = world.verify(str(lock), "-v", "--recheck")
    assert set(run.verdicts.values()) == {"verified"}
    assert counts(run) == (2, 0)
    assert "memo off: --recheck" in run.result.stderr


def test_a_key_others_can_read_is_not_used(world: World) -> None:
    _, lock = pinned_lock(world)
    world.verify(str(lock))
    key = key_path(world)
    os.chmod(key, 0o644)
    run = world.verify(str(lock), "-v")
    assert set(run.verdicts.values()) == {"verified"}
    assert counts(run) == (1, 0)
    assert "results of earlier checks are not used" in run.result.stderr
    assert "readable or writable by other users (mode 644)" in run.result.stderr


def test_failures_are_never_remembered(world: World) -> None:
    # An attestation for another file is broken evidence: checked again every run.
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    wheel = files[0]
    world.index.set_provenance(wheel.filename, world.attest("other-1.0.tar.gz", wheel.sha256, *github("acme/widget")))
    lock = world.lock(files)
    world.pin(**{name: GOOD})
    for _ in range(2):
        run = world.verify(str(lock), "-v")
        assert run.verdicts == {wheel.filename: "invalid"}
        assert counts(run) == (1, 0)
    assert entries(world) == []


def test_a_bad_trust_root_is_still_reported_when_nothing_is_attested(world: World, tmp_path: Path) -> None:
    # sigstore parses the root only when something is checked; with nothing to check and
    # nothing remembered, the root is still parsed, so a broken one is an input error (exit 2).
    name = world.name()
    lock = world.lock(world.publish(name, signer=None, kinds=("wheel",)))
    root = tmp_path / "not-a-root.json"
    root.write_text('{"mediaType": "nonsense"}')
    run = world.verify(str(lock), "--trust-root", str(root), trust=None)
    assert run.code == 2
    assert f"trust root file {root} is not a Sigstore trusted root" in run.result.stderr
