"""``assay admin policy set / show / report`` on a real index's storage, with the engine
deciding in between (the policy as set is what it applies)."""

from __future__ import annotations

import json
from pathlib import Path

from assay.mirror.report import get_policy
from assay.mirror.service import MirrorService
from tests.mirror.conftest import github, run
from tests.support.dists import make_wheel
from tests.support.server import AssayServer
from tests.support.sigstore_authority import LocalSigstore
from tests.support.static_index import StaticIndex, provenance_document


def test_policy_set_show_report(
    sqlite_index: AssayServer, static: StaticIndex, authority: LocalSigstore, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "cli-evil", "1.0")
    static.publish("cli-evil", "1.0", wheel.name, wheel.read_bytes())
    attested = make_wheel(tmp_path, "cli-tofu", "1.0")
    entry = static.publish("cli-tofu", "1.0", attested.name, attested.read_bytes())
    signer, publisher = github("org/tofu")
    statement = authority.attest(attested.name, entry.sha256, signer).model_dump(mode="json")
    static.set_provenance(attested.name, provenance_document([(publisher.to_publisher(), [statement])]))
    (tmp_path / "pins.toml").write_text(
        '[packages.cli-good]\nkind = "GitHub"\nrepository = "org/good"\nworkflow = "release.yml"\n'
    )
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        '[cooldown]\nmin-age = "7d"\nexempt = ["cli-evil", "cli-tofu"]\n'
        '[provenance]\npins = "pins.toml"\ntofu = true\nrequire = "pinned"\n'
        '[projects]\ndeny = ["cli-evil"]\n'
    )
    done = sqlite_index.cli("policy", "set", "--index", "default", str(policy_file))
    assert "1 pin(s)" in done.stdout
    shown = sqlite_index.cli("policy", "show").stdout
    assert 'deny = ["cli-evil"]' in shown
    assert "org/good" in shown

    async def decide() -> None:
        db = sqlite_index.db()
        async with MirrorService(
            db, sqlite_index.blobs(), trust_root=str(authority.trusted_root_path), page_ttl=60, max_file_size=10**7
        ) as svc:
            for name in ("cli-evil", "cli-tofu"):
                await svc.project_page(1, static.simple, get_policy(db, 1), name, base_url="")

    run(decide())
    lines = sqlite_index.cli("policy", "report", "--json").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["filename"], e["reason"], e["current"]) for e in entries] == [(wheel.name, "denied", True)]
    assert "denied" in sqlite_index.cli("policy", "report").stdout
    shown = sqlite_index.cli("policy", "show").stdout
    assert (
        f"# cli-tofu: kind = 'GitHub', repository = 'org/tofu', workflow = 'release.yml' (from {attested.name}" in shown
    )
    assert any(e["action"] == "policy:set" for e in sqlite_index.audit())


def test_a_bad_policy_is_refused_and_nothing_changes(sqlite_index: AssayServer, tmp_path: Path) -> None:
    before = sqlite_index.cli("policy", "show").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[cooldown]\nmin-age = "a week"\n')
    result = sqlite_index.cli("policy", "set", str(bad), check=False)
    assert result.returncode == 1
    assert "cooldown.min-age: 'a week' is not a duration" in result.stderr
    missing_pins = tmp_path / "missing.toml"
    missing_pins.write_text('[provenance]\nrequire = "pinned"\npins = "nowhere.toml"\n')
    result = sqlite_index.cli("policy", "set", str(missing_pins), check=False)
    assert result.returncode == 1
    assert "nowhere.toml does not exist" in result.stderr
    unknown = sqlite_index.cli("policy", "show", "--index", "team", check=False)
    assert unknown.returncode == 1
    assert "no index named 'team'" in unknown.stderr
    assert sqlite_index.cli("policy", "show").stdout == before
