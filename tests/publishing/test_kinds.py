"""The publisher kinds' own parts, without a server: each kind is one class (issue 11, part 1)
whose configuration, CLI options, publisher block and pin table agree."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from assay.cli.publishing_admin import publisher_add
from assay.publishers import KINDS, ConfigError, IdentityError, from_publisher
from assay.publishers.buildkite import BUILDKITE_ISSUER, Buildkite
from assay.publishers.maintainer import Maintainer
from assay.publishers.registry import IDENTITIES

SHARED = {"project", "issuer_url", "owner", "reserve", "index_name", "stage_only"}


@pytest.mark.parametrize("name", list(KINDS))
def test_the_add_command_of_each_kind_is_generated_from_its_config(name: str) -> None:
    kind = KINDS[name]
    command = publisher_add.commands[name]
    own = {p.name for p in command.params} - SHARED
    assert own == set(kind.Config.model_fields)
    for param in command.params:
        if param.name in kind.Config.model_fields:
            assert isinstance(param, click.Option)
            assert param.help == kind.Config.model_fields[param.name].description


def test_every_kind_has_one_name_and_its_pep740_identity() -> None:
    # Besides the publisher kinds' identities: a maintainer's own (issue 14, item 3), which no
    # token is minted for.
    assert {k.pep740_kind for k in KINDS.values()} | {Maintainer.kind} == set(IDENTITIES)
    assert Maintainer.kind not in KINDS
    assert all(name == name.lower() for name in KINDS)  # one spelling: "github", not "GitHub"


def test_a_stored_configuration_reads_back_as_the_typed_one() -> None:
    for name, raw in {
        "github": {"repository": "acme/w", "workflow": ".github/workflows/release.yml", "owner_id": "42"},
        "buildkite": {"organization": "acme", "pipeline": "release", "branch": "main"},
        "oidc": {"claims": {"sub": "repo:acme/w:*"}, "subject": "https://ci.acme.example/*"},
    }.items():
        kind = KINDS[name]
        config = kind.configure(raw, kind.default_issuer or "https://issuer.example")
        assert kind.load(config.stored()) == config


def test_buildkite_takes_a_branch_or_a_tag_not_both() -> None:
    with pytest.raises(ConfigError, match="--branch or --tag"):
        KINDS["buildkite"].configure(
            {"organization": "acme", "pipeline": "release", "branch": "main", "tag": "v1"}, BUILDKITE_ISSUER
        )
    with pytest.raises(ConfigError, match="organization must be a slug"):
        KINDS["buildkite"].configure({"organization": "acme/x", "pipeline": "release"}, BUILDKITE_ISSUER)


def test_buildkite_identity_block_and_pin() -> None:
    kind = KINDS["buildkite"]
    config = kind.configure({"organization": "acme", "pipeline": "release"}, BUILDKITE_ISSUER)
    identity = kind.identity(config, BUILDKITE_ISSUER)
    assert identity == Buildkite("acme", "release")
    block = identity.to_publisher()
    assert block == {"kind": "Buildkite", "issuer": BUILDKITE_ISSUER, "organization": "acme", "pipeline": "release"}
    assert from_publisher(block) == identity
    assert identity.pin_table() == {"kind": "Buildkite", "organization": "acme", "pipeline": "release"}
    elsewhere = Buildkite("acme", "release", issuer="https://buildkite.example")
    assert elsewhere.pin_table()["issuer"] == "https://buildkite.example"  # not the default: kept
    # A block whose "organization" holds a "/" would name another pipeline's certificate SAN.
    with pytest.raises(IdentityError, match="organization must be a slug"):
        from_publisher({**block, "organization": "acme/release", "pipeline": "x"})


def test_policies_use_no_private_pypi_attestations_api() -> None:
    # Sigstore policies are built from sigstore's public policy classes (issue 11).
    source = Path(__file__).parents[2] / "src" / "assay"
    users = [str(p) for p in source.rglob("*.py") if "_as_policy" in p.read_text()]
    assert users == []
