"""Unit checks of issue 14 items 3 and 5: the Maintainer identity, the statement reader, the
provenance's approvals member kept as provenance grows, and pins with ``approved``."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.attestations import provenance as prov
from assay.log import approvals, note
from assay.publishers import IdentityError, from_publisher
from assay.publishers.maintainer import Maintainer
from assay.verify.errors import InputError
from assay.verify.pins import PinFile


def test_maintainer_blocks() -> None:
    block = {"kind": "Maintainer", "issuer": "https://login.example", "email": "Alice@Example.com"}
    identity = from_publisher(block)
    assert identity == Maintainer(issuer="https://login.example", email="alice@example.com")
    assert identity.pin_table() == {
        "kind": "Maintainer",
        "issuer": "https://login.example",
        "email": "alice@example.com",
    }
    with pytest.raises(IdentityError, match="exactly one of email or subject"):
        from_publisher({"kind": "Maintainer", "issuer": "https://login.example"})
    with pytest.raises(IdentityError, match="exactly one of email or subject"):
        from_publisher({**block, "subject": "https://id.example/a"})


def test_merge_keeps_the_approvals() -> None:
    identity = Maintainer(issuer="https://login.example", email="a@example.com")
    first = approvals.with_statement(prov.provenance([prov.bundle(identity, [{"n": 1}])]), "signed note")
    other = Maintainer(issuer="https://login.example", email="b@example.com")
    merged = prov.merge(first, prov.bundle(other, [{"n": 2}]))
    assert approvals.in_provenance(merged) == ["signed note"]
    assert len(merged["attestation_bundles"]) == 2
    merged = prov.merge(merged, prov.bundle(identity, [{"n": 3}]))
    assert approvals.in_provenance(merged) == ["signed note"]


def test_statements_read_back_and_forgeries_refused() -> None:
    signer = note.Ed25519Signer.generate("index.example/log")
    text = (
        "assay release approval v1\nindex index.example/log\nproject widget\nversion 1.0\nstage s1\n"
        "approved 2026-12-01T17:00:00Z\napprover alice\ntriggered-by user:bob\n"
        f"file sha256:{'ab' * 32} widget-1.0.tar.gz\n"
    )
    signed = note.sign(text, [signer]).decode()
    opened = approvals.open_statement(signed, signer.verifier())
    assert opened.covers("widget-1.0.tar.gz", "AB" * 32)
    assert opened.summary() == "approved by alice at 2026-12-01T17:00:00Z"
    with pytest.raises(approvals.StatementError, match="not signed by the index's log key"):
        approvals.open_statement(signed, note.Ed25519Signer.generate("index.example/log").verifier())
    with pytest.raises(approvals.StatementError, match="not an approval statement"):
        approvals.read_unverified(note.sign("something else\n", [signer]).decode())


def test_pins_with_approved(tmp_path: Path) -> None:
    text = (
        '[packages.widget]\napproved = true\ncomment = "staged"\n\n'
        '[packages.django]\nkind = "Maintainer"\nissuer = "https://login.example"\nemail = "f@example.com"\n'
        "approved = true\n\n"
        '[packages.other]\nkind = "GitHub"\nrepository = "acme/other"\nworkflow = "release.yml"\n'
    )
    pins = PinFile.parse(tmp_path / ".provenance.toml", text)
    assert pins.approved == {"widget", "django"}
    assert set(pins.pins) == {"django", "other"}
    again = PinFile.parse(tmp_path / ".provenance.toml", pins.dumps())
    assert again.approved == pins.approved
    assert again.pins == pins.pins
    assert again.bare_comments == {"widget": "staged"}
    with pytest.raises(InputError, match="approved must be true or false"):
        PinFile.parse(tmp_path / "p.toml", '[packages.widget]\napproved = "yes"\n')
    with pytest.raises(InputError, match="needs a kind"):
        PinFile.parse(tmp_path / "p.toml", "[packages.widget]\napproved = false\n")
