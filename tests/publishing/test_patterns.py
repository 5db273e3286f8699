"""Generic OIDC publishers' claim patterns (issue 10, item 5; README "Claim and subject
patterns"): catch-all and over-broad patterns are refused at registration, ``*`` stays within
one ``/``- or ``:``-separated segment while ``**`` crosses them, and a pattern stored before the
language existed never matches (and is flagged) instead of absorbing tokens."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from assay.publishers import IdentityError, from_publisher
from assay.publishing.service import lookup_key
from assay.storage.models import PendingPublisher, utcnow
from tests.publishing.conftest import AUDIENCE
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer


def mint(server: AssayServer, token: str) -> httpx.Response:
    with server.client() as http:
        return http.post("/_/oidc/mint-token", json={"token": token})


def _add_oidc(server: AssayServer, idp: OIDCProvider, project: str, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return server.admin(
        "publisher", "add", "oidc", "--project", project, "--issuer", idp.issuer, "--owner", "owner", *args,
        check=check,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--claim", "sub=?*"], "'?' is not part of the pattern language"),
        (["--claim", "sub=*"], "does not pin a namespace"),
        (["--claim", "sub=**"], "does not pin a namespace"),
        (["--claim", "sub=repo:*"], "does not pin a namespace"),
        (["--claim", "sub=repo:acme*"], "does not pin a namespace"),
        (["--claim", "sub=repo:acme/[ab]pp"], "'[' is not part of the pattern language"),
        (["--claim", "sub=repo:acme/***"], "not ***"),
        (["--claim", "sub=repo:acme/app", "--claim", "environment=prod*"], "--claim environment"),
        (["--claim", "sub=repo:acme/app", "--subject", "https://ci.acme.example*"], "--subject"),
    ],
)
def test_over_broad_patterns_are_refused_at_registration(
    tp_index: AssayServer, idp: OIDCProvider, args: list[str], says: str
) -> None:
    result = _add_oidc(tp_index, idp, "broad", *args, check=False)
    assert result.returncode == 1, result.stdout
    assert says in result.stderr, result.stderr
    assert "broad" not in tp_index.admin("publisher", "list").stdout


def test_star_matches_within_one_segment_and_double_star_across(tp_index: AssayServer, idp: OIDCProvider) -> None:
    _add_oidc(tp_index, idp, "segments", "--claim", "sub=repo:acme/*:ref:refs/tags/*")
    for sub in (
        "repo:acme/app/evil:ref:refs/tags/v1",  # * does not cross /
        "repo:acme/app:ref:refs/tags/v1:ref:refs/heads/main",  # nor :
        "repo:acme/app:ref:refs/tags/release/v1",
        "repo:acme-evil/app:ref:refs/tags/v1",
    ):
        refused = mint(tp_index, idp.token(AUDIENCE, {"sub": sub}))
        assert refused.json()["errors"][0]["code"] == "invalid-publisher", (sub, refused.text)
    ok = mint(tp_index, idp.token(AUDIENCE, {"sub": "repo:acme/app:ref:refs/tags/v1"}))
    assert ok.status_code == 200, ok.text

    _add_oidc(tp_index, idp, "across", "--claim", "sub=repo:acme/**", "--claim", "runner=trusted")
    across = mint(tp_index, idp.token(AUDIENCE, {"sub": "repo:acme/lib:ref:refs/heads/main", "runner": "trusted"}))
    assert across.status_code == 200, across.text
    other_owner = mint(tp_index, idp.token(AUDIENCE, {"sub": "repo:acmex/lib:ref:x", "runner": "trusted"}))
    assert other_owner.json()["errors"][0]["code"] == "invalid-publisher"


def test_a_stored_glob_from_before_the_language_never_matches(tp_index: AssayServer, idp: OIDCProvider) -> None:
    # A pending catch-all as an older assay stored it (fnmatch: "?*" matches any sub). Pending
    # publishers are tried first, so it used to absorb every token of the issuer and create
    # its own project.
    config = {"claims": {"sub": "?*"}, "subject": None}
    with tp_index.db().write() as session:
        session.add(
            PendingPublisher(
                kind="oidc",
                issuer_url=idp.issuer,
                config=config,
                lookup_key=lookup_key("oidc", idp.issuer, config),
                match_key="",
                project_name="absorber",
                normalized_name="absorber",
                owner_id=None,
                expires=utcnow() + dt.timedelta(days=1),
            )
        )
    listed = tp_index.admin("publisher", "list").stdout
    assert "INVALID PATTERN" in listed, listed
    _add_oidc(tp_index, idp, "legit", "--claim", "sub=deploy:acme/legit")
    response = mint(tp_index, idp.token(AUDIENCE, {"sub": "deploy:acme/legit"}))
    assert response.status_code == 200, response.text
    with tp_index.client() as http:
        assert http.get("/simple/absorber/").status_code == 404
    # And a token only the stored glob could match is refused. The glob does not identify the
    # token, so the job is told only what its own token says (issue 10 item 4: never another
    # publisher's configuration); the admin finds why in the server log.
    stray = mint(tp_index, idp.token(AUDIENCE, {"sub": "anything:at/all"}))
    assert stray.json()["errors"][0]["code"] == "invalid-publisher"
    description = stray.json()["errors"][0]["description"]
    assert "no trusted publisher matches this token" in description, stray.text
    assert "?*" not in description, stray.text
    assert any("no longer accepted" in line for line in tp_index.log), tp_index.log[-20:]


def test_a_stored_configuration_todays_rules_refuse_matches_nothing(tp_index: AssayServer, idp: OIDCProvider) -> None:
    # Configurations are validated into the kind's typed Config whenever a row is read (issue
    # 11). A row that no longer validates (an older assay's, or edited by hand: here a workflow
    # that is no file name) must not turn every exchange on its issuer into a 500, nor
    # `publisher list` into a crash: it matches nothing, and is flagged.
    config = {"repository": "brokenorg/app", "workflow": "release", "environment": None}
    with tp_index.db().write() as session:
        session.add(
            PendingPublisher(
                kind="github",
                issuer_url=idp.issuer,
                config=config,
                lookup_key=lookup_key("github", idp.issuer, config),
                match_key="brokenorg/app",
                project_name="broken-config",
                normalized_name="broken-config",
                owner_id=None,
                expires=utcnow() + dt.timedelta(days=1),
            )
        )
    listed = tp_index.admin("publisher", "list").stdout
    assert "INVALID CONFIGURATION" in listed, listed
    assert "workflow must be a workflow file name" in listed, listed
    refused = mint(tp_index, idp.token(AUDIENCE, github_claims("brokenorg/app", "release")))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["code"] == "invalid-publisher"
    assert any("workflow must be a workflow file name" in line for line in tp_index.log), tp_index.log[-20:]


@pytest.mark.parametrize("subject", ["*", "https://*", "https://ci.example.com/?", "*@example.com"])
def test_a_served_oidc_publisher_block_with_an_unpinned_subject_is_unusable(subject: str) -> None:
    # The client side (pins, verification) reads publisher blocks from an index: a subject
    # pattern outside the language would accept certificates nobody reviewed.
    with pytest.raises(IdentityError, match="OIDC publisher subject"):
        from_publisher({"kind": "OIDC", "issuer": "https://ci.example.com", "subject": subject})
    assert from_publisher({"kind": "OIDC", "issuer": "https://ci.example.com", "subject": "ci@example.com"})
