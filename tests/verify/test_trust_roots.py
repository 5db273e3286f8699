"""Trust roots: Sigstore production and staging (real PyPI attestations from
shared/fixtures/pep740) and a private root (``--trust-root``, LocalSigstore)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from assay.publishers import GitHub, GitLab
from tests.conftest import FIXTURES
from tests.support.sigstore_authority import LocalSigstore
from tests.support.static_index import provenance_document
from tests.verify.conftest import Published, World, github

PYPI_ATTESTATIONS = "pypi_attestations-0.0.19.tar.gz"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
GITLAB = "gitlab_oidc_project-0.0.3.tar.gz"
RFC8785 = "rfc8785-0.1.2-py3-none-any.whl"


def _attestation(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((FIXTURES / name).read_text())
    return data


def _serve(world: World, filename: str, project: str, version: str, provenance: bytes) -> list[Published]:
    path = FIXTURES / filename
    content = path.read_bytes()
    world.index.publish(project, version, filename, content, provenance)
    sha = hashlib.sha256(content).hexdigest()
    return [Published(project, version, filename, sha, path, world.index.file_url(filename))]


def _production_lock(world: World) -> Path:
    """The three production fixtures, served as PyPI serves them."""
    real = (FIXTURES / f"{PYPI_ATTESTATIONS}.provenance").read_bytes()
    models = provenance_document(
        [
            (
                GitHub("trailofbits/pypi-attestation-models", "release.yml").to_publisher(),
                [_attestation(f"{MODELS}.attestation")],
            )
        ]
    )
    gitlab = provenance_document(
        [
            (
                GitLab("facutuesca/gitlab-oidc-project", ".gitlab-ci.yml").to_publisher(),
                [_attestation(f"{GITLAB}.publish.attestation")],
            )
        ]
    )
    first = _serve(world, PYPI_ATTESTATIONS, "pypi-attestations", "0.0.19", real)
    assert first[0].sha256 == "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3"
    lock = world.lock(
        first,
        _serve(world, MODELS, "pypi-attestation-models", "0.0.4a2", models),
        _serve(world, GITLAB, "gitlab-oidc-project", "0.0.3", gitlab),
    )
    world.pin(
        **{
            "pypi-attestations": {
                "kind": "GitHub",
                "repository": "trailofbits/pypi-attestations",
                "workflow": "release.yml",
            },
            "pypi-attestation-models": {
                "kind": "GitHub",
                "repository": "trailofbits/pypi-attestation-models",
                "workflow": "release.yml",
            },
            "gitlab-oidc-project": {
                "kind": "GitLab",
                "repository": "facutuesca/gitlab-oidc-project",
                "workflow": ".gitlab-ci.yml",
            },
        }
    )
    return lock


def test_real_pypi_attestations_verify_under_the_production_root(world: World) -> None:
    lock = _production_lock(world)
    run = world.verify(str(lock), trust=None)  # the default: Sigstore production
    assert run.code == 0, run.doc
    assert run.verdicts == {PYPI_ATTESTATIONS: "verified", MODELS: "verified", GITLAB: "verified"}


def test_publish_and_slsa_attestations_in_one_bundle(world: World) -> None:
    lock = _production_lock(world)
    world.index.files[PYPI_ATTESTATIONS].provenance = provenance_document(
        [
            (
                GitHub("trailofbits/pypi-attestations", "release.yml").to_publisher(),
                [
                    _attestation(f"{PYPI_ATTESTATIONS}.publish.attestation"),
                    _attestation(f"{PYPI_ATTESTATIONS}.slsa.attestation"),
                ],
            )
        ]
    )
    run = world.verify(str(lock), trust=None)
    assert run.file(PYPI_ATTESTATIONS)["verdict"] == "verified"
    assert run.file(PYPI_ATTESTATIONS)["reason"].startswith("2 attestations")


def test_production_attestations_are_invalid_under_other_roots(world: World) -> None:
    lock = _production_lock(world)
    staging = world.verify(str(lock), trust="staging")
    assert set(staging.verdicts.values()) == {"invalid"}
    local = world.verify(str(lock))  # the LocalSigstore root
    assert set(local.verdicts.values()) == {"invalid"}
    assert local.code == 1


def test_the_staging_fixture_verifies_only_under_the_staging_root(world: World) -> None:
    # rfc8785's attestation was signed on staging Sigstore by a personal e-mail identity, so
    # the pin is a generic OIDC identity (issuer + subject).
    provenance = provenance_document(
        [
            (
                {"kind": "OIDC", "issuer": "https://github.com/login/oauth", "subject": "william@yossarian.net"},
                [_attestation(f"{RFC8785}.publish.attestation")],
            )
        ]
    )
    lock = world.lock(_serve(world, RFC8785, "rfc8785", "0.1.2", provenance))
    world.pin(rfc8785={"kind": "OIDC", "issuer": "https://github.com/login/oauth", "subject": "william@yossarian.net"})

    staging = world.verify(str(lock), trust="staging")
    assert staging.verdicts == {RFC8785: "verified"}, staging.doc

    production = world.verify(str(lock), trust=None)
    assert production.verdicts == {RFC8785: "invalid"}
    assert "signature verification failed" in production.doc["files"][0]["reason"]


def test_a_private_root_from_trust_root(world: World, tmp_path: Path) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    world.pin(**{name: {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml"}})
    assert set(world.verify(str(lock)).verdicts.values()) == {"verified"}

    # Sigstore's production root, and another private root, reject the same attestations.
    assert set(world.verify(str(lock), trust=None).verdicts.values()) == {"invalid"}
    other = LocalSigstore(tmp_path / "other-authority")
    run = world.verify(str(lock), "--trust-root", str(other.trusted_root_path), trust="none")
    assert set(run.verdicts.values()) == {"invalid"}


def test_trust_root_errors_are_usage_errors(world: World, tmp_path: Path) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    missing = world.verify(str(lock), "--trust-root", str(tmp_path / "nope.json"), trust="none")
    assert missing.code == 2
    assert "does not exist" in missing.result.stderr
    (tmp_path / "bad.json").write_text("{}")
    bad = world.verify(str(lock), "--trust-root", str(tmp_path / "bad.json"), trust="none")
    assert bad.code == 2
    both = world.verify(str(lock), "--staging", trust="local")
    assert both.code == 2
