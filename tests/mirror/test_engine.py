"""The mirror engine against real upstreams: a second ``assay serve`` holding uploads, and the
static PEP 740 index (attested files under the local Sigstore)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from assay.admin import fsck
from assay.index import html as index_html
from assay.index import json as index_json
from assay.mirror.pagecache import UpstreamUnavailable
from assay.mirror.policy import empty_policy
from assay.mirror.report import report
from assay.mirror.service import MirroredPage, Opened, Refused
from assay.storage.models import AuditEvent, MirrorFile, MirrorPin, PendingBlob
from tests.mirror.conftest import Mirror, github, run
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import AssayServer
from tests.support.static_index import StaticIndex
from tests.support.upload import upload

BASE = "http://mirror.test"


def _page(
    mirror: Mirror, project: str, policy_text: str = "", upstream: str | None = None, **kw: object
) -> MirroredPage:
    async def go() -> MirroredPage:
        async with mirror.service() as svc:
            return await svc.project_page(
                1,
                upstream or mirror.static.simple,
                mirror.policy(policy_text, **kw),
                project,
                base_url=BASE,  # type: ignore[arg-type]
            )

    return run(go())


def _open(mirror: Mirror, filename: str, policy_text: str = "", upstream: str | None = None) -> Opened | Refused:
    async def go() -> Opened | Refused:
        async with mirror.service() as svc:
            return await svc.open_file(1, upstream or mirror.static.simple, mirror.policy(policy_text), filename)

    return run(go())


def _reasons(page: MirroredPage) -> dict[str, str | None]:
    return {d.filename: d.reason for d in page.decisions}


def _blob(mirror: Mirror, opened: Opened | Refused) -> bytes:
    assert isinstance(opened, Opened), opened
    return b"".join(mirror.blobs.open(opened.blob_key).chunks())


# ---- pages --------------------------------------------------------------------------------


def test_json_page_from_an_assay_upstream_and_first_download(
    mirror: Mirror, sqlite_index: AssayServer, alice_token: str
) -> None:
    project = mirror.name("hosted-up")
    wheel = make_wheel(mirror.tmp, project, "1.0")
    sdist = make_sdist(mirror.tmp, project, "1.0")
    with sqlite_index.client() as client:
        for path in (wheel, sdist):
            assert upload(client, path, alice_token).status_code == 200
        upstream_doc = client.get(
            f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        ).json()

    result = _page(mirror, project, upstream=sqlite_index.simple)
    assert result.page is not None
    assert not result.warnings
    files = {f.filename: f for f in result.page.files}
    assert set(files) == {wheel.name, sdist.name}
    for up in upstream_doc["files"]:
        mine = files[up["filename"]]
        # Faithful: hashes, PEP 700 size and upload-time, PEP 658 metadata hash, PEP 592 yank.
        assert mine.sha256 == up["hashes"]["sha256"]
        assert mine.size == up["size"]
        assert index_json.format_upload_time(mine.upload_time) == up["upload-time"]  # type: ignore[attr-defined, arg-type]
        assert mine.yanked is False
        if up["core-metadata"]:
            assert mine.core_metadata_sha256 == up["core-metadata"]["sha256"]
        # Served by assay, below the index's own files/ path.
        assert mine.url.startswith("../../files/mirror/1/")
    # The index's own serialisers render the page unchanged.
    doc = json.loads(index_json.render_project_page(result.page))
    assert {f["filename"] for f in doc["files"]} == {wheel.name, sdist.name}
    assert wheel.name in index_html.render_project_page(result.page)

    opened = _open(mirror, wheel.name, upstream=sqlite_index.simple)
    assert _blob(mirror, opened) == wheel.read_bytes()
    metadata = _open(mirror, wheel.name + ".metadata", upstream=sqlite_index.simple)
    assert isinstance(metadata, Opened)
    assert hashlib.sha256(_blob(mirror, metadata)).hexdigest() == files[wheel.name].core_metadata_sha256
    # Served locally afterwards: upstream's file URL is no longer asked.
    sqlite_index.log.clear()
    assert _blob(mirror, _open(mirror, wheel.name, upstream=sqlite_index.simple)) == wheel.read_bytes()
    assert not [line for line in sqlite_index.access_log() if "/files/" in line]


def test_metadata_alone_is_fetched_without_the_file(
    mirror: Mirror, sqlite_index: AssayServer, alice_token: str
) -> None:
    project = mirror.name("meta-first")
    wheel = make_wheel(mirror.tmp, project, "1.0")
    with sqlite_index.client() as client:
        assert upload(client, wheel, alice_token).status_code == 200
        upstream_metadata = client.get(
            f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        ).json()["files"][0]["core-metadata"]["sha256"]
    sqlite_index.log.clear()
    metadata = _open(mirror, wheel.name + ".metadata", upstream=sqlite_index.simple)
    assert hashlib.sha256(_blob(mirror, metadata)).hexdigest() == upstream_metadata
    fetched = [line for line in sqlite_index.access_log() if "/files/" in line]
    assert len(fetched) == 1  # the PEP 658 file only: a resolver's read costs no wheel download
    assert ".metadata" in fetched[0]
    # fsck knows the metadata row owns its blob.
    assert not [p for p in fsck.check(mirror.db, mirror.blobs, grace=0).problems if p.kind == "orphan-blob"]
    assert _blob(mirror, _open(mirror, wheel.name, upstream=sqlite_index.simple)) == wheel.read_bytes()
    again = _open(mirror, wheel.name + ".metadata", upstream=sqlite_index.simple)
    assert hashlib.sha256(_blob(mirror, again)).hexdigest() == upstream_metadata


def test_yank_and_project_status_pass_through(mirror: Mirror, sqlite_index: AssayServer, alice_token: str) -> None:
    project = mirror.name("yanked")
    wheel = make_wheel(mirror.tmp, project, "1.0")
    with sqlite_index.client() as client:
        assert upload(client, wheel, alice_token).status_code == 200
    sqlite_index.cli("yank", project, "1.0", "--reason", "broken build")
    sqlite_index.cli("project", "status", project, "deprecated", "--reason", "use another")
    result = _page(mirror, project, upstream=sqlite_index.simple)
    assert result.page is not None
    (link,) = result.page.files
    assert link.yanked == "broken build"  # PEP 592, with its reason
    assert (result.page.status.status, result.page.status.reason) == ("deprecated", "use another")  # PEP 792
    doc = json.loads(index_json.render_project_page(result.page))
    assert doc["project-status"] == {"status": "deprecated", "reason": "use another"}
    assert doc["files"][0]["yanked"] == "broken build"


def test_html_fallback(mirror: Mirror, authority: object) -> None:
    project = mirror.name("html")
    (name,) = mirror.publish(project, "1.0", github("org/html"))
    mirror.static.page_override[project] = "html-page"
    result = _page(mirror, project)
    assert result.page is not None
    (link,) = result.page.files
    assert link.filename == name
    assert link.sha256 == mirror.static.files[name].sha256
    # PEP 740 passes through the HTML form too (as a URL served by assay).
    assert link.provenance_url == f"{BASE}/integrity/{project}/1.0/{name}/provenance"
    assert link.upload_time is None
    assert link.size is None
    assert _blob(mirror, _open(mirror, name)) == mirror.static.files[name].content


def test_revalidation_uses_the_validators(mirror: Mirror) -> None:
    project = mirror.name("reval")
    mirror.publish(project, "1.0")
    first = _page(mirror, project)
    path = f"/simple/{project}/"
    assert [r.status for r in mirror.static.requests_to(path)] == [200]
    _page(mirror, project)  # within the TTL: upstream is not asked
    assert len(mirror.static.requests_to(path)) == 1
    mirror.clock.advance(seconds=61)
    again = _page(mirror, project)
    requests = mirror.static.requests_to(path)
    assert [r.status for r in requests] == [200, 304]
    assert requests[1].headers.get("if-none-match")
    assert again.page == first.page


def test_upstream_down_serves_the_kept_page_with_a_warning(mirror: Mirror) -> None:
    with StaticIndex() as upstream:
        project = mirror.name("down")
        held = f"{project.replace('-', '_')}-1.0.tar.gz"
        upstream.publish(project, "1.0", held, b"sdist bytes")
        upstream.publish(project, "2.0", f"{project.replace('-', '_')}-2.0.tar.gz", b"never downloaded")
        upstream_url = upstream.simple
        first = _page(mirror, project, upstream=upstream_url)
        assert _blob(mirror, _open(mirror, held, upstream=upstream_url)) == b"sdist bytes"
    mirror.clock.advance(seconds=120)
    stale = _page(mirror, project, upstream=upstream_url)
    assert stale.page == first.page
    assert stale.warnings
    assert "unreachable" in stale.warnings[0]
    # Files already held are still served (with the warning); others cannot be fetched.
    opened = _open(mirror, held, upstream=upstream_url)
    assert _blob(mirror, opened) == b"sdist bytes"
    assert isinstance(opened, Opened)
    assert opened.warnings
    refused = _open(mirror, f"{project.replace('-', '_')}-2.0.tar.gz", upstream=upstream_url)
    assert isinstance(refused, Refused)
    assert refused.status == 502
    # A page never fetched cannot be served: an error for the route to answer (502), never
    # an error page posing as a simple page.
    with pytest.raises(UpstreamUnavailable):
        _page(mirror, "never-fetched", upstream=upstream_url)


# ---- files --------------------------------------------------------------------------------


def _nothing_kept(mirror: Mirror, filename: str) -> None:
    with mirror.db.read() as session:
        assert session.execute(sa.select(MirrorFile).where(MirrorFile.filename == filename)).first() is None
        assert session.execute(sa.select(PendingBlob)).first() is None
    assert not [b.key for b in mirror.blobs.iter_blobs() if b.key.endswith(filename)]
    assert not list(mirror.blobs.staging_dir.iterdir())


def test_corrupted_upstream_file_is_refused_and_nothing_kept(mirror: Mirror) -> None:
    project = mirror.name("corrupt")
    (name,) = mirror.publish(project, "1.0")
    mirror.static.files[name].listed_sha256 = hashlib.sha256(b"what the page claims").hexdigest()
    refused = _open(mirror, name)
    assert isinstance(refused, Refused)
    assert refused.status == 502
    assert "sha256" in refused.reason
    assert "nothing was kept" in refused.reason
    _nothing_kept(mirror, name)


def test_hash_changed_under_the_same_name_keeps_the_old_file(mirror: Mirror) -> None:
    project = mirror.name("rehash")
    (name,) = mirror.publish(project, "1.0")
    old = mirror.static.files[name].content
    assert _blob(mirror, _open(mirror, name)) == old
    new = old + b"tampered"
    mirror.static.publish(project, "1.0", name, new)
    mirror.clock.advance(seconds=61)
    page = _page(mirror, project)
    assert page.page is not None
    (link,) = page.page.files
    assert link.sha256 == hashlib.sha256(old).hexdigest()  # the kept bytes' hash
    assert _blob(mirror, _open(mirror, name)) == old
    changed = [e for e in report(mirror.db, 1) if e.reason == "hash-changed" and e.filename == name]
    assert [e.sha256 for e in changed] == [hashlib.sha256(new).hexdigest()]


# ---- policy -------------------------------------------------------------------------------


def test_cooldown_hides_until_the_file_ages(mirror: Mirror, sqlite_index: AssayServer, alice_token: str) -> None:
    project = mirror.name("young")
    wheel = make_wheel(mirror.tmp, project, "1.0")
    with sqlite_index.client() as client:
        assert upload(client, wheel, alice_token).status_code == 200
    policy = '[cooldown]\nmin-age = "7d"\n'
    young = _page(mirror, project, policy, upstream=sqlite_index.simple)
    assert young.page is not None
    assert young.page.files == ()
    assert _reasons(young) == {wheel.name: "cooldown"}
    mirror.clock.advance(days=8)  # no sleeping: the engine's clock moves
    aged = _page(mirror, project, policy, upstream=sqlite_index.simple)
    assert aged.page is not None
    assert [f.filename for f in aged.page.files] == [wheel.name]
    entries = [e for e in report(mirror.db, 1) if e.filename == wheel.name]
    assert [(e.reason, e.current) for e in entries] == [("cooldown", False)]


def test_cooldown_fails_closed_without_upload_time(mirror: Mirror) -> None:
    project = mirror.name("timeless")
    (name,) = mirror.publish(project, "1.0")
    page = _page(mirror, project, '[cooldown]\nmin-age = "PT1H"\n')
    assert _reasons(page) == {name: "no-upload-time"}
    refused = _open(mirror, name, '[cooldown]\nmin-age = "PT1H"\n')
    assert isinstance(refused, Refused)
    assert refused.status == 404
    assert "no-upload-time" in refused.reason
    exempt = _page(mirror, project, f'[cooldown]\nmin-age = "PT1H"\nexempt = ["{project}"]\n')
    assert _reasons(exempt) == {name: None}


def test_pinned_hides_a_release_signed_by_another_repository(mirror: Mirror) -> None:
    project = mirror.name("pinned")
    (v1,) = mirror.publish(project, "1.0", github("org/good"))
    (v2,) = mirror.publish(project, "2.0", github("org/other"))
    policy = '[provenance]\nrequire = "pinned"\npins = "pins.toml"\n'
    pins = {project: {"kind": "GitHub", "repository": "org/good", "workflow": "release.yml"}}

    async def go() -> tuple[MirroredPage, MirroredPage, int]:
        async with mirror.service() as svc:
            first = await svc.project_page(1, mirror.static.simple, mirror.policy(policy, pins), project, base_url=BASE)
            checks = svc.attestations.checks_run
            second = await svc.project_page(
                1, mirror.static.simple, mirror.policy(policy, pins), project, base_url=BASE
            )
            return first, second, svc.attestations.checks_run - checks

    first, second, rechecked = run(go())
    assert _reasons(first) == {v1: None, v2: "identity-changed"}
    assert _reasons(second) == _reasons(first)
    assert rechecked == 0  # cached by (file sha256, provenance digest, pin)
    assert [f.filename for f in first.page.files] == [v1]  # type: ignore[union-attr]
    (entry,) = [e for e in report(mirror.db, 1) if e.filename == v2]
    assert entry.reason == "identity-changed"
    assert "org/other" in entry.detail


def test_lost_provenance_is_blocked(mirror: Mirror) -> None:
    project = mirror.name("lost")
    (v1,) = mirror.publish(project, "1.0", github("org/lost"))
    (v2,) = mirror.publish(project, "2.0")  # no provenance (the Integrity API answers 404)
    (v3,) = mirror.publish(project, "3.0", mode="null")
    page = _page(mirror, project, "[provenance]\nblock-lost = true\n")
    assert _reasons(page) == {v1: None, v2: "lost-provenance", v3: "lost-provenance"}
    assert _reasons(_page(mirror, project, "")) == {v1: None, v2: None, v3: None}


def test_deny_list(mirror: Mirror) -> None:
    project = mirror.name("evil")
    (name,) = mirror.publish(project, "1.0")
    page = _page(mirror, project, f'[projects]\ndeny = ["{project.upper()}"]\n')
    assert page.page is not None
    assert page.page.files == ()
    assert _reasons(page) == {name: "denied"}
    other = mirror.name("fine")
    (kept,) = mirror.publish(other, "1.0")
    assert _reasons(_page(mirror, other, f'[projects]\nallow = ["{other}"]\n')) == {kept: None}
    assert _reasons(_page(mirror, project, f'[projects]\nallow = ["{other}"]\n')) == {name: "denied"}


def test_tofu_records_a_pin_once_and_never_changes_it(mirror: Mirror) -> None:
    project = mirror.name("tofu")
    (v1,) = mirror.publish(project, "1.0", github("org/first"))
    policy = '[provenance]\nrequire = "pinned"\ntofu = true\n'
    assert _reasons(_page(mirror, project, policy)) == {v1: None}
    (v2,) = mirror.publish(project, "2.0", github("org/second"))
    mirror.clock.advance(seconds=61)
    assert _reasons(_page(mirror, project, policy)) == {v1: None, v2: "identity-changed"}
    # Upstream drops the release the pin came from: the pin stays, the other signer stays out.
    del mirror.static.files[v1]
    mirror.clock.advance(seconds=61)
    assert _reasons(_page(mirror, project, policy)) == {v2: "identity-changed"}
    with mirror.db.read() as session:
        pins = list(session.execute(sa.select(MirrorPin).where(MirrorPin.project == project)).scalars())
        events = list(
            session.execute(
                sa.select(AuditEvent).where(AuditEvent.action == "mirror:tofu-pin", AuditEvent.project == project)
            ).scalars()
        )
    assert [(p.pin["repository"], p.filename) for p in pins] == [("org/first", v1)]
    assert len(events) == 1
    with mirror.db.read() as session:
        hidden = (
            session.execute(sa.select(AuditEvent).where(AuditEvent.action == "mirror:hide", AuditEvent.target == v2))
            .scalars()
            .all()
        )
    assert len(hidden) == 1  # the first decision, once, in the audit log


def test_no_policy_is_a_plain_mirror(mirror: Mirror, tmp_path: Path) -> None:
    project = mirror.name("plain")
    (name,) = mirror.publish(project, "1.0", kinds=("sdist",))

    async def go() -> MirroredPage:
        async with mirror.service() as svc:
            return await svc.project_page(1, mirror.static.simple, empty_policy(), project, base_url=BASE)

    assert _reasons(run(go())) == {name: None}


def test_attested_hides_broken_or_unavailable_provenance(mirror: Mirror) -> None:
    project = mirror.name("attested")
    (good,) = mirror.publish(project, "1.0", github("org/attested"))
    (broken,) = mirror.publish(project, "2.0")
    mirror.static.set_provenance(broken, b'{"version": 1, "attestation_bundles": "no"}')
    (none,) = mirror.publish(project, "3.0")
    policy = '[provenance]\nrequire = "attested"\n'
    page = _page(mirror, project, policy)
    assert _reasons(page) == {good: None, broken: "invalid", none: "unattested"}
    other = mirror.name("disabled")
    (later,) = mirror.publish(other, "1.0", github("org/attested"))
    mirror.static.attestations_disabled = True  # the Integrity API answers 403
    try:
        assert _reasons(_page(mirror, other, policy)) == {later: "provenance-unavailable"}
    finally:
        mirror.static.attestations_disabled = False
    mirror.clock.advance(seconds=61)
    # Not kept as an answer: once upstream serves it again, the file is verified and shown.
    assert _reasons(_page(mirror, other, policy)) == {later: None}


def test_provenance_is_re_served_unchanged(mirror: Mirror) -> None:
    project = mirror.name("reserve")
    (attested,) = mirror.publish(project, "1.0", github("org/reserve"))
    (bare,) = mirror.publish(project, "2.0")

    async def go(filename: str, policy: str = "") -> bytes | Refused:
        async with mirror.service() as svc:
            return await svc.provenance(1, mirror.static.simple, mirror.policy(policy), filename)

    assert run(go(attested)) == mirror.static.files[attested].provenance
    missing = run(go(bare))
    assert isinstance(missing, Refused)
    assert (missing.status, missing.reason) == (404, f"No provenance available for {bare}")
    hidden = run(go(attested, f'[projects]\ndeny = ["{project}"]\n'))
    assert isinstance(hidden, Refused)
    assert hidden.status == 404
    assert "denied" in hidden.reason


def test_a_decided_page_stands_until_the_first_cooldown_ends(mirror: Mirror) -> None:
    """``valid_until``: the kept page's freshness, or the instant the first hidden file ages
    into view, whichever comes first; at that instant the file is visible."""
    project = mirror.name("ageing")
    (old,) = mirror.publish(project, "1.0")
    (new,) = mirror.publish(project, "2.0")
    uploaded = mirror.clock.now.replace(microsecond=0) - dt.timedelta(minutes=30)
    mirror.static.files[old].upload_time = "2026-01-01T00:00:00Z"
    mirror.static.files[new].upload_time = uploaded.strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = mirror.policy('[cooldown]\nmin-age = "1h"\n')

    def page() -> MirroredPage:
        async def go() -> MirroredPage:
            async with mirror.service(page_ttl=86400) as svc:
                return await svc.project_page(1, mirror.static.simple, policy, project, base_url=BASE)

        return run(go())

    fetched = mirror.clock.now
    young = page()
    assert _reasons(young) == {old: None, new: "cooldown"}
    assert young.valid_until == uploaded + dt.timedelta(hours=1)
    mirror.clock.now = uploaded + dt.timedelta(hours=1) - dt.timedelta(microseconds=1)
    assert _reasons(page())[new] == "cooldown"
    mirror.clock.now = uploaded + dt.timedelta(hours=1)
    aged = page()
    assert _reasons(aged) == {old: None, new: None}
    # Nothing left to age into view: the page stands for its TTL (counted from its fetch).
    assert aged.valid_until == fetched + dt.timedelta(seconds=86400)
