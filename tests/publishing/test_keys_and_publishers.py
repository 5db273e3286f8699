"""Where issuer keys come from (discovery, JWKS file, JWKS URL), how they are cached and
refetched, algorithm pinning, and the publisher kinds' matching rules."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from assay.storage.models import Publisher
from tests.publishing.conftest import AUDIENCE, TLS
from tests.support.oidc_provider import (
    OIDCProvider,
    buildkite_claims,
    circleci_claims,
    forgejo_claims,
    github_claims,
    gitlab_claims,
)
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.tls import tls_server

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def fresh(tmp_path: Path, tls: TLS) -> Iterator[AssayServer]:
    """A server of its own: key caches start empty, the refetch interval is 2 s."""
    server = AssayServer(
        tmp_path,
        args=["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)],
        env={"ASSAY_JWKS_REFETCH_SECONDS": "2"},
        ca_file=tls.ca_file,
    ).start()
    server.ensure_user("owner")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def either(request: pytest.FixtureRequest, tmp_path: Path, tls: TLS) -> Iterator[AssayServer]:
    """A server of its own on each database (the exchange's statements differ per dialect)."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if request.param == "postgresql" else None
        server = tls_server(tmp_path, tls, database_url=url).start()
        stack.callback(server.stop)
        server.ensure_user("owner")
        yield server


def mint(server: AssayServer, token: str, **extra: object) -> httpx.Response:
    with server.client() as http:
        return http.post("/_/oidc/mint-token", json={"token": token, **extra})


def test_air_gapped_jwks_file_with_githubs_own_issuer(fresh: AssayServer, idp: OIDCProvider) -> None:
    # A GitHub publisher on the real GitHub issuer URL, keys from a file: no discovery request
    # can happen (the issuer's host is not reachable from here at all).
    fresh.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
    fresh.admin("project", "create", "airgap", "--owner", "owner")
    fresh.admin(
        "publisher", "add", "github", "--project", "airgap", "--repository", "acme/airgap", "--workflow", "release.yml"
    )
    response = mint(fresh, idp.token(AUDIENCE, github_claims("acme/airgap"), iss=GITHUB_ISSUER))
    assert response.status_code == 200, response.text


def test_jwks_url_and_discovery_are_cached_and_refetched_on_rotation(fresh: AssayServer, idp: OIDCProvider) -> None:
    fresh.admin("issuer", "add", "--issuer", idp.issuer)
    fresh.admin("project", "create", "rotating", "--owner", "owner")
    fresh.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "rotating",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/rot",
        "--workflow",
        "release.yml",
    )
    idp.requests_log.clear()
    for _ in range(3):
        assert mint(fresh, idp.token(AUDIENCE, github_claims("acme/rot"))).status_code == 200
    # Warm cache: discovery and JWKS fetched once for three exchanges.
    assert idp.requests_log.count("/.well-known/openid-configuration") == 1
    assert idp.requests_log.count("/.well-known/jwks") == 1

    new_kid = idp.rotate_key()
    time.sleep(2.2)  # past the refetch interval (ASSAY_JWKS_REFETCH_SECONDS=2)
    assert mint(fresh, idp.token(AUDIENCE, github_claims("acme/rot"), kid=new_kid)).status_code == 200
    assert idp.requests_log.count("/.well-known/jwks") == 2

    # A flood of unknown kids triggers at most one refetch per interval.
    for _ in range(5):
        r = mint(fresh, idp.unknown_kid_token(AUDIENCE, github_claims("acme/rot")))
        assert r.json()["errors"][0]["code"] == "invalid-token"
    assert idp.requests_log.count("/.well-known/jwks") <= 3


def test_jwks_url_source(fresh: AssayServer, idp: OIDCProvider) -> None:
    fresh.admin("issuer", "add", "--issuer", idp.issuer, "--jwks", idp.jwks_uri)
    fresh.admin("project", "create", "by-url", "--owner", "owner")
    fresh.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "by-url",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/url",
        "--workflow",
        "release.yml",
    )
    idp.requests_log.clear()
    assert mint(fresh, idp.token(AUDIENCE, github_claims("acme/url"))).status_code == 200
    assert "/.well-known/openid-configuration" not in idp.requests_log
    assert "/.well-known/jwks" in idp.requests_log


def test_algorithm_pinning(fresh: AssayServer) -> None:
    with OIDCProvider(algorithm="ES256") as es:
        fresh.admin("issuer", "add", "--issuer", es.issuer)  # pinned to the default, RS256
        fresh.admin("project", "create", "pinned", "--owner", "owner")
        fresh.admin(
            "publisher",
            "add",
            "github",
            "--project",
            "pinned",
            "--issuer",
            es.issuer,
            "--repository",
            "acme/es",
            "--workflow",
            "release.yml",
        )
        refused = mint(fresh, es.token(AUDIENCE, github_claims("acme/es")))
        assert refused.json()["errors"][0]["code"] == "invalid-token"
        assert "ES256" in refused.json()["errors"][0]["description"]
        fresh.admin("issuer", "remove", es.issuer, check=False)  # refused: a publisher uses it
    with OIDCProvider(algorithm="ES256") as es2:
        fresh.admin("issuer", "add", "--issuer", es2.issuer, "--algorithm", "ES256")
        fresh.admin("project", "create", "pinned-es", "--owner", "owner")
        fresh.admin(
            "publisher",
            "add",
            "github",
            "--project",
            "pinned-es",
            "--issuer",
            es2.issuer,
            "--repository",
            "acme/es2",
            "--workflow",
            "release.yml",
        )
        assert mint(fresh, es2.token(AUDIENCE, github_claims("acme/es2"))).status_code == 200


def test_an_issuer_changed_by_an_admin_takes_effect_at_the_next_exchange(fresh: AssayServer, idp: OIDCProvider) -> None:
    # The server keeps the issuers it has read, and confirms the one a token was verified under
    # inside the exchange's transaction: a removal or a narrower algorithm list applies at once.
    fresh.admin("issuer", "add", "--issuer", idp.issuer)  # RS256, the provider's algorithm
    first = mint(fresh, idp.token(AUDIENCE, github_claims("acme/nobody")))
    assert first.json()["errors"][0]["code"] == "invalid-publisher"  # verified: the issuer is known

    fresh.admin("issuer", "remove", idp.issuer)
    fresh.admin("issuer", "add", "--issuer", idp.issuer, "--algorithm", "ES256")
    narrowed = mint(fresh, idp.token(AUDIENCE, github_claims("acme/nobody")))
    assert narrowed.json()["errors"][0]["code"] == "invalid-token", narrowed.text
    assert "ES256" in narrowed.json()["errors"][0]["description"]

    # Widened again: a refusal under the remembered (narrower) configuration is not final.
    fresh.admin("issuer", "remove", idp.issuer)
    fresh.admin("issuer", "add", "--issuer", idp.issuer)
    widened = mint(fresh, idp.token(AUDIENCE, github_claims("acme/nobody")))
    assert widened.json()["errors"][0]["code"] == "invalid-publisher", widened.text

    fresh.admin("issuer", "remove", idp.issuer)
    gone = mint(fresh, idp.token(AUDIENCE, github_claims("acme/nobody")))
    assert gone.json()["errors"][0]["code"] == "invalid-payload", gone.text
    assert "unknown trusted publishing issuer" in gone.json()["errors"][0]["description"]


def test_unknown_algorithm_names_and_plain_http_issuers_are_refused_at_configuration(fresh: AssayServer) -> None:
    bad = fresh.admin("issuer", "add", "--issuer", "https://ci.example", "--algorithm", "HS256", check=False)
    assert bad.returncode == 1
    assert "unsupported algorithm" in bad.stderr
    plain = fresh.admin("issuer", "add", "--issuer", "http://ci.example", check=False)
    assert plain.returncode == 1
    assert "https://" in plain.stderr


def test_pending_then_registered_publisher_on_both_databases(either: AssayServer, idp: OIDCProvider) -> None:
    # The first exchange finds the pending publisher and creates the project; later ones find
    # the registered publisher with all of its projects (one statement looks up both kinds).
    either.admin("issuer", "add", "--issuer", idp.issuer)
    publisher = ["--issuer", idp.issuer, "--repository", "acme/both", "--workflow", "release.yml"]
    either.admin("publisher", "add", "github", "--project", "both-new", *publisher)
    first = mint(either, idp.token(AUDIENCE, github_claims("acme/both")))
    assert first.status_code == 200, first.text
    either.admin("project", "create", "both-old", "--owner", "owner")
    either.admin("publisher", "add", "github", "--project", "both-old", *publisher)  # the same workload
    again = mint(either, idp.token(AUDIENCE, github_claims("acme/both")))
    assert again.status_code == 200, again.text
    with either.client() as http:
        assert http.get("/simple/both-new/").status_code == 200  # created by the first exchange
    # One audit event per project a token was minted for: the second token covers both.
    events = [json.loads(line) for line in either.admin("audit", "--json").stdout.splitlines()]
    minted = sorted(e["project"] for e in events if e["action"] == "token:mint")
    assert minted == ["both-new", "both-new", "both-old"], minted
    other = mint(either, idp.token(AUDIENCE, github_claims("acme/stranger")))
    assert other.json()["errors"][0]["code"] == "invalid-publisher"


def test_pending_publisher_expires(fresh: AssayServer, idp: OIDCProvider) -> None:
    fresh.admin("issuer", "add", "--issuer", idp.issuer)
    out = fresh.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "not-yet",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/later",
        "--workflow",
        "release.yml",
    ).stdout
    assert "pending" in out
    listed = fresh.admin("publisher", "list").stdout
    assert "pending-" in listed
    assert "not-yet" in listed
    # Expire it by registering a pending publisher with a zero-day lifetime on another project.
    expired = AssayServer(fresh.data_dir, env={"ASSAY_PENDING_PUBLISHER_DAYS": "0"})
    expired.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "gone",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/gone",
        "--workflow",
        "release.yml",
    )
    r = mint(fresh, idp.token(AUDIENCE, github_claims("acme/gone")))
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["errors"][0]["code"] == "invalid-publisher"
    ok = mint(fresh, idp.token(AUDIENCE, github_claims("acme/later")))
    assert ok.status_code == 200, ok.text
    with fresh.client() as http:
        assert http.get("/simple/not-yet/").status_code == 200  # created by the first publish
        assert http.get("/simple/gone/").status_code == 404


def test_pending_publisher_is_void_once_the_project_exists(fresh: AssayServer, idp: OIDCProvider) -> None:
    fresh.admin("issuer", "add", "--issuer", idp.issuer)
    fresh.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "raced",
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/raced",
        "--workflow",
        "release.yml",
    )
    fresh.admin("project", "create", "raced", "--owner", "owner")  # someone else took the name
    r = mint(fresh, idp.token(AUDIENCE, github_claims("acme/raced")))
    assert r.json()["errors"][0]["code"] == "invalid-pending-publisher"
    assert "pending-" not in fresh.admin("publisher", "list").stdout  # deleted, as on PyPI


@pytest.mark.parametrize(
    ("kind", "args", "claims", "wrong"),
    [
        (
            "gitlab",
            ["--repository", "grp/proj", "--workflow", "ci/release.yml"],
            lambda host: gitlab_claims("grp/proj", "ci/release.yml", instance_host=host),
            lambda host: gitlab_claims("grp/proj", ".gitlab-ci.yml", instance_host=host),
        ),
        (
            "forgejo",
            ["--repository", "acme/fj", "--workflow", "release.yml"],
            lambda host: forgejo_claims("acme/fj", "release.yml"),
            lambda host: forgejo_claims("acme/fj", "other.yml"),
        ),
        (
            "github-enterprise",
            ["--repository", "acme/ghes", "--workflow", "release.yml"],
            lambda host: github_claims("acme/ghes", "release.yml"),
            lambda host: github_claims("acme/ghes", "release.yml", event_name="pull_request_target"),
        ),
        (
            "circleci",
            ["--project-id", "p-1", "--pipeline-definition-id", "d-1"],
            lambda host: circleci_claims("p-1", "d-1"),
            lambda host: circleci_claims("p-1", "d-2"),
        ),
        (
            "buildkite",
            ["--organization", "acme", "--pipeline", "release"],
            lambda host: buildkite_claims("acme", "release"),
            lambda host: buildkite_claims("acme", "release-candidate"),
        ),
        (
            "buildkite",
            ["--organization", "acme", "--pipeline", "tagged", "--tag", "v1.0.0"],
            lambda host: buildkite_claims("acme", "tagged", tag="v1.0.0"),
            lambda host: buildkite_claims("acme", "tagged", branch="main"),
        ),
        (
            "oidc",
            ["--claim", "sub=repo:acme/*:ref:refs/tags/*", "--claim", "runner=trusted"],
            lambda host: {"sub": "repo:acme/x:ref:refs/tags/v1", "runner": "trusted"},
            lambda host: {"sub": "repo:acme/x:ref:refs/heads/main", "runner": "trusted"},
        ),
    ],
)
def test_each_kind_matches_its_claims(fresh: AssayServer, kind: str, args: list[str], claims, wrong) -> None:  # type: ignore[no-untyped-def]
    with OIDCProvider() as ci:
        fresh.admin("issuer", "add", "--issuer", ci.issuer)
        fresh.admin(
            "publisher", "add", kind, "--project", f"kind-{kind}-{uuid.uuid4().hex[:8]}", "--issuer", ci.issuer,
            "--owner", "owner", *args,
        )
        bad = mint(fresh, ci.token(AUDIENCE, wrong(ci.authority)))
        assert bad.json()["errors"][0]["code"] == "invalid-publisher", bad.text
        good = mint(fresh, ci.token(AUDIENCE, claims(ci.authority)))
        assert good.status_code == 200, good.text


def test_reusable_workflow_called_from_the_release_workflow(fresh: AssayServer, idp: OIDCProvider) -> None:
    # The caller (workflow_ref) is the publisher's workflow; the job runs a reusable workflow
    # from another repository (job_workflow_ref). Accepted: the caller decides (see publishers/github.py).
    fresh.admin("issuer", "add", "--issuer", idp.issuer)
    fresh.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "reusable",
        "--issuer",
        idp.issuer,
        "--owner",
        "owner",
        "--repository",
        "acme/app",
        "--workflow",
        "release.yml",
    )
    claims = github_claims(
        "acme/app", "release.yml", job_workflow_ref="acme/shared-ci/.github/workflows/publish.yml@refs/heads/main"
    )
    assert mint(fresh, idp.token(AUDIENCE, claims)).status_code == 200
    # The other way round: the publisher names a reusable workflow that lives in another
    # repository and is called from an unrelated workflow: refused (repository differs).
    fresh.admin(
        "publisher",
        "add",
        "github",
        "--project",
        "reusable-2",
        "--issuer",
        idp.issuer,
        "--owner",
        "owner",
        "--repository",
        "acme/lib",
        "--workflow",
        "publish.yml",
    )
    claims = github_claims(
        "acme/evil", "anything.yml", job_workflow_ref="acme/lib/.github/workflows/publish.yml@refs/heads/main"
    )
    assert mint(fresh, idp.token(AUDIENCE, claims)).json()["errors"][0]["code"] == "invalid-publisher"


def _listed(server: AssayServer, project: str) -> str:
    return server.cli("publisher", "list", "--project", project).stdout


def _refused_for_owner(response: httpx.Response, owner_id: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid-publisher", error
    assert f"repository_owner_id is {owner_id!r}, not the owner id this publisher is pinned to" in error["description"]


def test_owner_id_is_recorded_at_the_first_exchange_and_required_after(either: AssayServer, idp: OIDCProvider) -> None:
    # Issue 10 item 6: PyPI pins repository_owner_id (account resurrection: a deleted owner
    # re-created under the same name gets a new id). Without --owner-id it is recorded.
    either.cli("issuer", "add", "--issuer", idp.issuer)
    either.cli("project", "create", "pinned", "--owner", "owner")
    workload = ["--issuer", idp.issuer, "--repository", "acme/pinned", "--workflow", "release.yml"]
    either.cli("publisher", "add", "github", "--project", "pinned", *workload)
    assert "owner-id=(recorded at the first publish)" in either.admin("publisher", "list").stdout
    first = mint(either, idp.token(AUDIENCE, github_claims("acme/pinned", repository_owner_id="1234")))
    assert first.status_code == 200, first.text
    assert "owner-id=1234" in either.admin("publisher", "list", "--project", "pinned").stdout
    resurrected = github_claims("acme/pinned", repository_owner_id="999")
    _refused_for_owner(mint(either, idp.token(AUDIENCE, resurrected)), "999")
    again = mint(either, idp.token(AUDIENCE, github_claims("acme/pinned", repository_owner_id="1234")))
    assert again.status_code == 200, again.text

    # A pending publisher for the same workload joins the pinned publisher: its pin holds there,
    # and a refusal creates no project.
    either.cli("publisher", "add", "github", "--project", "pinned-new", *workload)
    _refused_for_owner(mint(either, idp.token(AUDIENCE, resurrected)), "999")
    with either.client() as http:
        assert http.get("/simple/pinned-new/").status_code == 404
    joined = mint(either, idp.token(AUDIENCE, github_claims("acme/pinned", repository_owner_id="1234")))
    assert joined.status_code == 200, joined.text

    # Two first exchanges at once with different owners: one pins, the other is refused.
    either.cli("project", "create", "raced-pin", "--owner", "owner")
    either.cli("publisher", "add", "github", "--project", "raced-pin", "--issuer", idp.issuer,
               "--repository", "acme/race", "--workflow", "release.yml")  # fmt: skip
    tokens = [idp.token(AUDIENCE, github_claims("acme/race", repository_owner_id=str(n))) for n in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: mint(either, t), tokens))
    assert sorted(r.status_code for r in results) == [200, 422, 422, 422], [r.text for r in results]
    winner = str([r.status_code for r in results].index(200))
    assert f"owner-id={winner}\t" in _listed(either, "raced-pin")


def test_a_pending_publisher_keeps_the_owner_id_once_reified(either: AssayServer, idp: OIDCProvider) -> None:
    either.cli("issuer", "add", "--issuer", idp.issuer)
    # Recorded at the exchange that creates the project.
    either.cli("publisher", "add", "github", "--project", "fresh-pin", "--issuer", idp.issuer, "--owner", "owner",
               "--repository", "acme/fresh", "--workflow", "release.yml")  # fmt: skip
    created = mint(either, idp.token(AUDIENCE, github_claims("acme/fresh", repository_owner_id="4321")))
    assert created.status_code == 200, created.text
    assert "owner-id=4321" in _listed(either, "fresh-pin")
    _refused_for_owner(mint(either, idp.token(AUDIENCE, github_claims("acme/fresh"))), "1234")
    assert mint(either, idp.token(AUDIENCE, github_claims("acme/fresh", repository_owner_id="4321"))).status_code == 200
    # The admin's --owner-id: required of the pending publisher, and kept by the publisher it becomes.
    either.cli("publisher", "add", "github", "--project", "given-pin", "--issuer", idp.issuer, "--owner", "owner",
               "--repository", "acme/given", "--workflow", "release.yml", "--owner-id", "777")  # fmt: skip
    assert "owner-id=777" in _listed(either, "given-pin")
    _refused_for_owner(mint(either, idp.token(AUDIENCE, github_claims("acme/given"))), "1234")
    with either.client() as http:
        assert http.get("/simple/given-pin/").status_code == 404
    given = mint(either, idp.token(AUDIENCE, github_claims("acme/given", repository_owner_id="777")))
    assert given.status_code == 200, given.text
    listed = _listed(either, "given-pin")
    assert "owner-id=777" in listed, listed
    assert "pending" not in listed, listed
    _refused_for_owner(mint(either, idp.token(AUDIENCE, github_claims("acme/given"))), "1234")

    # A publisher registered with --owner-id before migration 0002 has the id only in its config:
    # it is shown and required all the same, and recorded by its next exchange.
    with either.db().write() as session:
        session.execute(sa.update(Publisher).values(repository_owner_id=None))
    assert "owner-id=777" in _listed(either, "given-pin")
    _refused_for_owner(mint(either, idp.token(AUDIENCE, github_claims("acme/given"))), "1234")
    assert mint(either, idp.token(AUDIENCE, github_claims("acme/given", repository_owner_id="777"))).status_code == 200
    with either.db().read() as session:
        pins = set(session.execute(sa.select(Publisher.repository_owner_id)).scalars())
    assert pins == {"777", None}, pins  # acme/fresh's pin was cleared above and awaits its next exchange
