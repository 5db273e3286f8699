"""Every verdict of the contract (issue 5, "Verdicts"), through the real CLI and real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from assay.publishers import (
    OIDC,
    CircleCI,
    Forgejo,
    GitHub,
    GitHubEnterprise,
    GitLab,
    Google,
    Identity,
)
from assay.publishers.buildkite import Buildkite
from tests.support.sigstore_authority import CertIdentity
from tests.support.static_index import NULL, provenance_document
from tests.verify.conftest import World, github

FILE_KEYS = {"name", "version", "filename", "sha256", "verdict", "reason", "identity"}
VERDICTS = {
    "verified",
    "pinned",
    "unattested",
    "identity-changed",
    "unpinned",
    "attestation-lost",
    "invalid",
    "log-missing",
    "log-mismatch",
    "log-fork",
    "log-unwitnessed",
    "not-reproduced",
    "unapproved",
}


def gh_pin(repository: str, workflow: str = "release.yml", **extra: str) -> dict[str, str]:
    return {"kind": "GitHub", "repository": repository, "workflow": workflow, **extra}


def test_verified_checks_every_file_and_prints_the_json_contract(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.pin(**{name: gh_pin("acme/widget")})

    run = world.verify(str(world.lock(files)))

    assert run.code == 0, run.text
    doc = run.doc
    assert set(doc) == {"files", "summary"}
    assert [set(f) for f in doc["files"]] == [FILE_KEYS, FILE_KEYS]
    assert {f["filename"] for f in doc["files"]} == {f.filename for f in files}
    for entry, published in zip(doc["files"], files, strict=True):
        assert entry["name"] == name
        assert entry["version"] == "1.0"
        assert entry["sha256"] == published.sha256
        assert entry["verdict"] == "verified"
        assert entry["identity"] == gh_pin("acme/widget")
        assert "acme/widget" in entry["reason"]
    assert set(doc["summary"]) == VERDICTS
    assert doc["summary"]["verified"] == 2
    assert sum(doc["summary"].values()) == 2


def test_table_output_names_files_and_verdicts(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.pin(**{name: gh_pin("acme/widget")})
    run = world.verify(str(world.lock(files)), json_output=False)
    assert run.code == 0
    assert files[0].filename in run.text
    assert "verified" in run.text
    assert "nothing failed" in run.text


def test_tofu_pins_then_verifies(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))

    first = world.verify(str(lock), "--tofu")
    assert first.code == 0
    assert set(first.verdicts.values()) == {"pinned"}
    assert world.pins_path.read_text().count(f"[packages.{name}]") == 1
    assert 'repository = "acme/widget"' in world.pins_path.read_text()

    second = world.verify(str(lock))
    assert second.code == 0
    assert set(second.verdicts.values()) == {"verified"}


def test_tofu_never_changes_an_existing_pin(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("evil/widget")))
    world.pin(**{name: gh_pin("acme/widget")})
    before = world.pins_path.read_bytes()

    run = world.verify(str(lock), "--tofu")

    assert run.code == 1
    assert set(run.verdicts.values()) == {"identity-changed"}
    assert world.pins_path.read_bytes() == before


def test_tofu_does_not_pin_packages_pinned_in_the_legacy_file(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    (world.tmp / ".provenance.txt").write_text(f"{name} https://github.com/acme/widget\n")
    run = world.verify(str(lock), "--tofu")
    assert set(run.verdicts.values()) == {"verified"}
    assert not world.pins_path.exists()


def test_unattested_is_a_warning_and_fails_with_strict(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=None))
    run = world.verify(str(lock))
    assert run.code == 0
    assert set(run.verdicts.values()) == {"unattested"}
    assert "404" in run.doc["files"][0]["reason"]
    assert run.doc["files"][0]["identity"] is None

    strict = world.verify(str(lock), "--strict")
    assert strict.code == 1
    assert set(strict.verdicts.values()) == {"unattested"}


def test_provenance_null_on_the_page_is_unattested(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=None, mode=NULL))
    run = world.verify(str(lock))
    assert set(run.verdicts.values()) == {"unattested"}
    assert "provenance: null" in run.doc["files"][0]["reason"]
    # PEP 740's null means "none": the client does not go on to ask the Integrity API.
    assert not world.index.requests_to(f"/integrity/{name}/")


def test_unpinned_fails_and_proposes_the_identity(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget", "publish.yml")))
    run = world.verify(str(lock))
    assert run.code == 1
    assert set(run.verdicts.values()) == {"unpinned"}
    entry = run.doc["files"][0]
    assert entry["identity"] == gh_pin("acme/widget", "publish.yml")
    assert f"assay pins update {name}" in entry["reason"]


def test_attestation_lost(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=None)
    world.pin(**{name: gh_pin("acme/widget")})
    run = world.verify(str(world.lock(files)))
    assert run.code == 1
    assert set(run.verdicts.values()) == {"attestation-lost"}
    assert "acme/widget" in run.doc["files"][0]["reason"]
    assert run.doc["files"][0]["identity"] == gh_pin("acme/widget")


def test_identity_changed_names_both_identities(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("evil/widget"))
    world.pin(**{name: gh_pin("acme/widget")})
    run = world.verify(str(world.lock(files)))
    assert run.code == 1
    assert set(run.verdicts.values()) == {"identity-changed"}
    reason = run.doc["files"][0]["reason"]
    assert "acme/widget" in reason
    assert "evil/widget" in reason
    assert run.doc["files"][0]["identity"] == gh_pin("evil/widget")


def test_a_forged_publisher_block_does_not_pass(world: World) -> None:
    """The block says the pinned repository; the certificate says another: identity-changed."""
    name = world.name()
    files = world.publish(name, kinds=("wheel",))
    f = files[0]
    world.index.set_provenance(
        f.filename,
        world.attest(f.filename, f.sha256, CertIdentity.github("evil/widget"), GitHub("acme/widget", "release.yml")),
    )
    world.pin(**{name: gh_pin("acme/widget")})
    run = world.verify(str(world.lock(files)))
    assert run.verdicts == {f.filename: "identity-changed"}
    reason = run.doc["files"][0]["reason"]
    assert "https://github.com/evil/widget/.github/workflows/release.yml" in reason
    assert "claims GitHub acme/widget" in reason
    # Nothing trustworthy to propose: the certificate contradicts the block.
    assert run.doc["files"][0]["identity"] is None


def test_a_pin_with_another_workflow_is_identity_changed(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget", "nightly.yml"))
    world.pin(**{name: gh_pin("acme/widget", "release.yml")})
    run = world.verify(str(world.lock(files)))
    assert set(run.verdicts.values()) == {"identity-changed"}


def test_pinned_environment_is_compared_with_the_publisher_block(world: World) -> None:
    name = world.name()
    files = world.publish(name, kinds=("wheel",))
    f = files[0]
    signer = CertIdentity.github("acme/widget")
    world.index.set_provenance(
        f.filename, world.attest(f.filename, f.sha256, signer, GitHub("acme/widget", "release.yml", "pypi"))
    )
    world.pin(**{name: gh_pin("acme/widget", environment="pypi")})
    assert world.verify(str(world.lock(files))).verdicts == {f.filename: "verified"}

    world.pin(**{name: gh_pin("acme/widget", environment="production")})
    run = world.verify(str(world.lock(files)))
    assert run.verdicts == {f.filename: "identity-changed"}
    assert "environment 'production'" in run.doc["files"][0]["reason"]


def _flip(attestation: dict[str, Any], field: str) -> dict[str, Any]:
    raw = bytearray(base64.b64decode(attestation["envelope"][field]))
    raw[len(raw) // 2] ^= 0x01
    attestation["envelope"][field] = base64.b64encode(bytes(raw)).decode()
    return attestation


@pytest.mark.parametrize("breakage", ["signature", "statement", "subject-digest", "subject-name"])
def test_broken_evidence_is_invalid(world: World, breakage: str) -> None:
    name = world.name()
    files = world.publish(name, kinds=("wheel",))
    f = files[0]
    signer = CertIdentity.github("acme/widget")
    publisher = GitHub("acme/widget", "release.yml").to_publisher()
    if breakage == "subject-digest":
        attestation = world.authority.attest(f.filename, "ab" * 32, signer).model_dump(mode="json")
    elif breakage == "subject-name":
        other = f.filename.replace("1.0", "2.0")
        attestation = world.authority.attest(other, f.sha256, signer).model_dump(mode="json")
    else:
        good = world.authority.attest(f.filename, f.sha256, signer).model_dump(mode="json")
        attestation = _flip(good, breakage)
    world.index.set_provenance(f.filename, provenance_document([(publisher, [attestation])]))
    lock = world.lock(files)

    world.pin(**{name: gh_pin("acme/widget")})
    pinned = world.verify(str(lock))
    assert pinned.code == 1
    assert pinned.verdicts == {f.filename: "invalid"}

    world.pins_path.unlink()
    tofu = world.verify(str(lock), "--tofu")
    assert tofu.verdicts == {f.filename: "invalid"}
    assert not world.pins_path.exists()  # TOFU never pins broken evidence


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not json", "not JSON"),
        (b"[" * 200_000 + b"]" * 200_000, "not JSON"),  # nested past the recursion limit
        (b'{"version": 1, "attestation_bundles": []}', "no attestation_bundles"),
        (b'{"version": 2, "attestation_bundles": []}', "unsupported provenance version"),
        (b"[1, 2, 3]", "not a JSON object"),
        (
            json.dumps(
                {
                    "version": 1,
                    "attestation_bundles": [{"publisher": {"kind": "GitHub"}, "attestations": [{"version": 1}]}],
                }
            ).encode(),
            "not a valid PEP 740 attestation",
        ),
    ],
)
def test_malformed_provenance_is_invalid_and_named(world: World, body: bytes, message: str) -> None:
    name = world.name()
    files = world.publish(name, kinds=("wheel",))
    world.index.set_provenance(files[0].filename, body)
    run = world.verify(str(world.lock(files)))
    assert run.code == 1
    entry = run.doc["files"][0]
    assert entry["verdict"] == "invalid"
    assert message in entry["reason"]
    assert entry["name"] == name


def test_two_packages_of_one_kind_are_pinned_to_their_own_repositories(world: World) -> None:
    one, two = world.name("one"), world.name("two")
    lock = world.lock(world.publish(one, signer=github("acme/one")), world.publish(two, signer=github("acme/two")))
    world.pin(**{one: gh_pin("acme/one"), two: gh_pin("acme/two")})
    right = world.verify(str(lock))
    assert right.code == 0
    assert set(right.verdicts.values()) == {"verified"}

    world.pin(**{one: gh_pin("acme/two"), two: gh_pin("acme/one")})
    swapped = world.verify(str(lock))
    assert swapped.code == 1
    assert set(swapped.verdicts.values()) == {"identity-changed"}


# ---------------------------------------------------------------------------------------------
# Every publisher kind, including the custom-issuer ones assay serves
# ---------------------------------------------------------------------------------------------

CIRCLE_PROJECT = "1b9d7e4c-2f3a-4c5d-8e6f-708192a3b4c5"
CIRCLE_PIPELINE = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"

KINDS: dict[str, tuple[CertIdentity, Identity, dict[str, str], CertIdentity]] = {
    # kind: (signer, publisher block identity, expected pin table, another signer)
    "GitHub": (
        CertIdentity.github("acme/w"),
        GitHub("acme/w", "release.yml"),
        gh_pin("acme/w"),
        CertIdentity.github("acme/x"),
    ),
    "GitLab": (
        CertIdentity.gitlab("grp/sub/w"),
        GitLab("grp/sub/w", ".gitlab-ci.yml"),
        {"kind": "GitLab", "repository": "grp/sub/w", "workflow_filepath": ".gitlab-ci.yml"},
        CertIdentity.gitlab("grp/sub/x"),
    ),
    "GitLab-self-managed": (
        CertIdentity.gitlab("grp/w", instance="https://gitlab.example.com"),
        GitLab("grp/w", ".gitlab-ci.yml", instance="https://gitlab.example.com"),
        {
            "kind": "GitLab",
            "repository": "grp/w",
            "workflow_filepath": ".gitlab-ci.yml",
            "instance": "https://gitlab.example.com",
        },
        CertIdentity.gitlab("grp/w"),  # same path on gitlab.com: another identity
    ),
    "Google": (
        CertIdentity.google("release@w.iam.gserviceaccount.com"),
        Google("release@w.iam.gserviceaccount.com"),
        {"kind": "Google", "email": "release@w.iam.gserviceaccount.com"},
        CertIdentity.google("other@w.iam.gserviceaccount.com"),
    ),
    "CircleCI": (
        CertIdentity.circleci(CIRCLE_PROJECT, CIRCLE_PIPELINE, "github.com/acme/w", "refs/heads/main"),
        CircleCI(CIRCLE_PROJECT, CIRCLE_PIPELINE, "github.com/acme/w", "refs/heads/main"),
        {"kind": "CircleCI", "project_id": CIRCLE_PROJECT, "pipeline_definition_id": CIRCLE_PIPELINE},
        CertIdentity.circleci(CIRCLE_PROJECT, CIRCLE_PIPELINE[::-1]),
    ),
    "GitHubEnterprise": (
        CertIdentity.github("acme/w", host="ghe.example.com", issuer="https://ghe.example.com/_services/token"),
        GitHubEnterprise("https://ghe.example.com", "acme/w", "release.yml"),
        {
            "kind": "GitHubEnterprise",
            "instance": "https://ghe.example.com",
            "repository": "acme/w",
            "workflow": "release.yml",
        },
        CertIdentity.github("acme/w"),  # github.com, not the enterprise instance
    ),
    "Forgejo": (
        CertIdentity.github("acme/w", host="code.example.org", issuer="https://code.example.org/api/actions"),
        Forgejo("https://code.example.org", "acme/w", "release.yml"),
        {"kind": "Forgejo", "instance": "https://code.example.org", "repository": "acme/w", "workflow": "release.yml"},
        CertIdentity.github("acme/w", host="code.example.org", issuer="https://evil.example.org/api/actions"),
    ),
    "Buildkite": (
        CertIdentity(san="https://buildkite.com/acme/w", issuer="https://agent.buildkite.com", extensions={}),
        Buildkite("acme", "w"),
        {"kind": "Buildkite", "organization": "acme", "pipeline": "w"},
        # Another pipeline of the same organization: a changed pipeline is another identity.
        CertIdentity(san="https://buildkite.com/acme/x", issuer="https://agent.buildkite.com", extensions={}),
    ),
    "OIDC": (
        CertIdentity.email("release@example.com", "https://idp.example.com"),
        OIDC("https://idp.example.com", "release@example.com"),
        {"kind": "OIDC", "issuer": "https://idp.example.com", "subject": "release@example.com"},
        CertIdentity.email("intruder@example.com", "https://idp.example.com"),
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_publisher_kind_pins_verifies_and_detects_a_change(world: World, kind: str) -> None:
    signer, publisher, table, stranger = KINDS[kind]
    name = world.name(kind.lower())
    files = world.publish(name, kinds=("wheel",))
    f = files[0]
    world.index.set_provenance(f.filename, world.attest(f.filename, f.sha256, signer, publisher))
    lock = world.lock(files)

    tofu = world.verify(str(lock), "--tofu")
    assert tofu.verdicts == {f.filename: "pinned"}, tofu.doc
    assert tofu.doc["files"][0]["identity"] == table
    assert world.verify(str(lock)).verdicts == {f.filename: "verified"}

    # Same publisher block, a certificate for someone else: never verified.
    world.index.set_provenance(f.filename, world.attest(f.filename, f.sha256, stranger, publisher))
    changed = world.verify(str(lock))
    assert changed.verdicts == {f.filename: "identity-changed"}, changed.doc


# ---------------------------------------------------------------------------------------------
# The older tool's .provenance.txt
# ---------------------------------------------------------------------------------------------


def test_legacy_pins_accept_any_workflow_of_the_repository(world: World) -> None:
    gh_name, gl_name = world.name("gh"), world.name("gl")
    gh_files = world.publish(gh_name, signer=github("acme/widget", "nightly.yml"), kinds=("wheel",))
    gl_files = world.publish(gl_name, kinds=("wheel",))
    g = gl_files[0]
    world.index.set_provenance(
        g.filename,
        world.attest(
            g.filename,
            g.sha256,
            CertIdentity.gitlab("grp/proj", "ci/release.yml"),
            GitLab("grp/proj", "ci/release.yml"),
        ),
    )
    (world.tmp / ".provenance.txt").write_text(
        f"{gh_name:<49} https://github.com/acme/widget\n{gl_name:<49} https://gitlab.com/grp/proj\n"
    )
    lock = world.lock(gh_files, gl_files)

    run = world.verify(str(lock))
    assert run.code == 0, run.doc
    assert set(run.verdicts.values()) == {"verified"}
    assert "(any workflow)" in run.doc["files"][0]["reason"]

    (world.tmp / ".provenance.txt").write_text(
        f"{gh_name} https://github.com/acme/other\n{gl_name} https://gitlab.com/grp/proj\n"
    )
    moved = world.verify(str(lock))
    assert moved.verdicts[gh_files[0].filename] == "identity-changed"
    assert moved.verdicts[g.filename] == "verified"


def test_toml_pins_take_precedence_over_legacy_pins(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget", "release.yml")))
    (world.tmp / ".provenance.txt").write_text(f"{name} https://github.com/acme/widget\n")
    world.pin(**{name: gh_pin("acme/widget", "other.yml")})
    assert set(world.verify(str(lock)).verdicts.values()) == {"identity-changed"}


# ---------------------------------------------------------------------------------------------
# The table for people (issue 10, item 19): 100 columns, reasons once, --strict rows marked
# ---------------------------------------------------------------------------------------------


def test_table_fits_a_log_of_100_columns_and_gives_each_reason_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a log (no terminal, no COLUMNS) the table is laid out for 100 columns, and a reason
    shared by several files is printed once under it, not on every row."""
    long = world.name("a-project-with-a-name-long-enough-to-fold-in-a-narrow-table")
    bare = world.name("bare")
    lock = world.lock(world.publish(long, signer=github("acme/widget")), world.publish(bare, signer=None))
    world.pin(**{long: gh_pin("acme/widget")})
    env = world.env()
    env["COLUMNS"] = None
    monkeypatch.setattr(world, "env", lambda: env)

    relaxed = world.verify(str(lock), json_output=False)
    strict = world.verify(str(lock), "--strict", json_output=False)

    for run in (relaxed, strict):
        lines = run.result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 100, run.result.stdout
        assert run.result.stdout.count("1 attestation by GitHub acme/widget release.yml") == 1
    assert relaxed.code == 0
    assert [line for line in relaxed.result.stdout.splitlines() if "unattested" in line and "warning" in line]
    assert "FAILED" not in relaxed.result.stdout
    # Under --strict the unattested rows say they failed, as the exit status does.
    assert strict.code == 1
    rows = [line for line in strict.result.stdout.splitlines() if "│ unattested" in line]
    assert len(rows) == 2
    assert all("FAILED" in row for row in rows)


def test_tofu_says_when_it_pinned_nothing(world: World) -> None:
    pinned, bare = world.name("pinned"), world.name("bare")
    lock = world.lock(world.publish(pinned, signer=github("acme/widget")))
    world.pin(**{pinned: gh_pin("acme/widget")})

    run = world.verify(str(lock), "--tofu")
    assert run.code == 0
    assert "--tofu pinned nothing: every package already has a pin" in run.result.stderr

    unattested = world.verify(str(world.lock(world.publish(bare, signer=None))), "--tofu")
    assert f"--tofu pinned nothing: the packages without a pin have no sound attestation to pin ({bare})" in (
        unattested.result.stderr
    )
    assert "pinned nothing" not in world.verify(str(lock)).result.stderr  # only with --tofu
