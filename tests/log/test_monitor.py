"""Issue 13, item 6: ``assay log monitor`` replays a log from its own state and reports, one
JSON object per finding: a filename logged twice with different hashes, a publisher change,
lost provenance, a removed file; it resumes where it stopped without reporting again, and
reports a forked or rolled-back log (exit 3) without replaying it. Against a static log
built with assay's own log code (the entries a real index could not be made to write: a
reused filename) and against a real ``assay serve`` (a removed file)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from assay.cli import main
from assay.log import entries, note
from tests.support.dists import make_wheel
from tests.support.server import AssayServer, serve_on
from tests.support.static_log import StaticLog
from tests.support.upload import upload

WHEN = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
GH_A = {"kind": "GitHub", "repository": "org/widget", "workflow": "release.yml"}
GH_B = {"kind": "GitHub", "repository": "mallory/widget", "workflow": "release.yml"}
FIELDS = {"finding", "origin", "entry", "time", "project", "version", "filename", "old", "new", "detail"}


def up(filename: str, sha: str, *, publisher: dict[str, str] | None = None, provenance: bool = False,
       project: str = "widget") -> dict[str, Any]:
    return entries.upload(
        project=project, version="1.0", filename=filename, sha256=sha, size=10, upload_time=WHEN,
        publisher=publisher, token=None if publisher else "tok-1",
        provenance={"version": 1, "attestation_bundles": []} if provenance else None,
    )


def monitor(url: str, state: Path, *extra: str) -> tuple[Result, list[dict[str, Any]]]:
    result = CliRunner().invoke(main, ["log", "monitor", url, "--state", str(state), "--json", *extra])
    return result, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def log() -> Iterator[StaticLog]:
    served = StaticLog(note.Ed25519Signer.generate("monitor.example.test")).serve()
    yield served
    served.stop()


def test_each_finding_once_then_resume(log: StaticLog, tmp_path: Path) -> None:
    history = [
        up("widget-1.0-py3-none-any.whl", "a" * 64, publisher=GH_A, provenance=True),
        up("widget-1.0.tar.gz", "b" * 64, publisher=GH_A, provenance=True),
        up("other-1.0.tar.gz", "c" * 64, project="other"),  # token, never attested: nothing
    ]
    log.publish_entries(history)
    first, found = monitor(log.url, tmp_path)  # key pinned on first use from <prefix>key
    assert first.exit_code == 0, first.output
    assert found == []
    assert "trust on first use" in first.stderr
    history += [
        up("widget-1.0-py3-none-any.whl", "d" * 64, publisher=GH_A, provenance=True),  # reused name
        up("widget-1.1.tar.gz", "e" * 64, publisher=GH_B, provenance=True),  # another publisher
        up("widget-1.2.tar.gz", "f" * 64),  # a token upload without provenance
        entries.remove("widget", "1.0", "widget-1.0.tar.gz", "b" * 64, when=WHEN),
        entries.yank("widget", "1.0", "bad", yanked=True, when=WHEN),  # nothing to report
    ]
    log.publish_entries(history)
    second, found = monitor(log.url, tmp_path)
    assert second.exit_code == 1, second.output
    assert [(f["finding"], f["entry"]) for f in found] == [
        ("filename-reused", 3), ("publisher-changed", 4), ("provenance-lost", 5), ("file-removed", 6)
    ]
    assert all(set(f) == FIELDS for f in found)
    reused = found[0]
    assert (reused["old"], reused["new"]) == ("a" * 64, "d" * 64)
    assert reused["origin"] == "monitor.example.test"
    assert reused["filename"] == "widget-1.0-py3-none-any.whl"
    assert (found[1]["old"], found[1]["new"]) == (GH_A, GH_B)
    assert found[3]["filename"] == "widget-1.0.tar.gz"
    # A restart: nothing new, nothing reported again.
    third, found = monitor(log.url, tmp_path)
    assert third.exit_code == 0, third.output
    assert found == []
    # One more entry: only it is read (from the partial bundle) and judged against the state.
    history.append(up("widget-1.1.tar.gz", "0" * 64, publisher=GH_B, provenance=True))
    log.publish_entries(history)
    fourth, found = monitor(log.url, tmp_path)
    assert [(f["finding"], f["entry"]) for f in found] == [("filename-reused", 8)]
    assert fourth.exit_code == 1


def test_a_fork_or_rollback_is_reported_and_not_replayed(log: StaticLog, tmp_path: Path) -> None:
    history = [up(f"w-{i}.tar.gz", f"{i:064x}") for i in range(5)]
    log.publish_entries(history)
    assert monitor(log.url, tmp_path)[0].exit_code == 0
    log.publish_entries([up(f"w-{i}.tar.gz", f"{i + 1:064x}") for i in range(7)])  # history rewritten
    forked, found = monitor(log.url, tmp_path)
    assert forked.exit_code == 3
    assert [f["finding"] for f in found] == ["log-fork"]
    log.publish_entries(history[:3])
    rolled, found = monitor(log.url, tmp_path)
    assert rolled.exit_code == 3
    assert [f["finding"] for f in found] == ["log-rollback"]
    # Another key than the one pinned in the state is refused outright (a new log).
    other = note.Ed25519Signer.generate("monitor.example.test").verifier_key()
    assert monitor(log.url, tmp_path, "--key", other)[0].exit_code == 1
    # A checkpoint the pinned key did not sign.
    log.signer = note.Ed25519Signer.generate("monitor.example.test")
    log.publish_entries(history)
    bad, found = monitor(log.url, tmp_path)
    assert bad.exit_code == 3
    assert [f["finding"] for f in found] == ["log-signature"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    yield from serve_on(tmp_path_factory.mktemp("monitor"), "sqlite", ("--log-checkpoint-interval", "0"))


def test_a_file_removed_on_a_real_index(server: AssayServer, tmp_path: Path) -> None:
    token = server.quick_token("monitor-alice")
    wheel = make_wheel(tmp_path, "monitored", "1.0")
    with server.client() as http:
        assert upload(http, wheel, token).status_code == 200
        key = http.get("/log/key").text.strip()
    state = tmp_path / "state"
    first, found = monitor(server.url, state, "--key", key)  # the index's base URL: log/ added
    assert first.exit_code == 0, first.output
    assert found == []
    server.cli("remove-file", wheel.name)
    second, found = monitor(server.url, state)
    assert second.exit_code == 1, second.output
    assert [(f["finding"], f["filename"], f["project"]) for f in found] == [("file-removed", wheel.name, "monitored")]
    assert monitor(server.url, state)[1] == []


def test_a_private_index_is_monitored_with_credentials_in_the_url(server: AssayServer, tmp_path: Path) -> None:
    """A private index's log reads only with a read token of that index; the monitor takes it
    the way pip and uv take index credentials, in the URL (``https://__token__:<token>@…``),
    and never prints it."""
    server.cli("index", "create", "secretlog", "--private")
    server.quick_user("monitor-bob")
    token = server.cli("token", "create", "--user", "monitor-bob", "--index", "secretlog").stdout.strip()
    wheel = make_wheel(tmp_path, "hushed", "1.0")
    with server.client(index="secretlog") as http:
        assert upload(http, wheel, token).status_code == 200
        assert http.get("log/key").status_code == 401
    host = server.url.split("://", 1)[1]
    state = tmp_path / "state"
    refused, _ = monitor(f"{server.url}/secretlog/", state)
    assert refused.exit_code != 0, refused.output
    assert "401" in refused.output
    with_token = f"http://__token__:{token}@{host}/secretlog/"
    result, found = monitor(with_token, state)
    assert result.exit_code == 0, result.output
    assert found == []
    assert token not in result.output
    server.cli("remove-file", wheel.name, "--index", "secretlog")
    result, found = monitor(with_token, state)
    assert [(f["finding"], f["filename"]) for f in found] == [("file-removed", wheel.name)], result.output
