"""Getting provenance: PEP 691 pages, the Integrity API fallback, the cache and its
revalidation, --offline, and indexes that misbehave (issue 5, "Bad input")."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli import main
from tests.support.static_index import NO_KEY, StaticIndex
from tests.verify.conftest import World, github

MiB = 1 << 20


def gh_pin(repository: str = "acme/widget") -> dict[str, str]:
    return {"kind": "GitHub", "repository": repository, "workflow": "release.yml"}


@pytest.fixture
def dead_index() -> str:
    """A simple API URL on a loopback port where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/simple/"


@pytest.fixture
def disabled(index: StaticIndex) -> Iterator[StaticIndex]:
    index.attestations_disabled = True
    try:
        yield index
    finally:
        index.attestations_disabled = False


# ---------------------------------------------------------------------------------------------
# Where provenance comes from
# ---------------------------------------------------------------------------------------------


def test_pages_without_a_provenance_key_fall_back_to_the_integrity_api(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), mode=NO_KEY)
    world.pin(**{name: gh_pin()})
    run = world.verify(str(world.lock(files)))
    assert set(run.verdicts.values()) == {"verified"}
    asked = world.index.requests_to(f"/integrity/{name}/1.0/")
    assert {r.path.split("/")[4] for r in asked} == {f.filename for f in files}


def test_one_connection_per_worker_is_reused(world: World) -> None:
    """HTTP/1.1 keep-alive: far fewer TCP connections than requests (checked server-side by
    counting distinct client ports)."""
    names = [world.name() for _ in range(6)]
    groups = [world.publish(n, signer=github("acme/widget")) for n in names]
    world.pin(**{n: gh_pin() for n in names})
    before = len(world.index.requests)
    run = world.verify(str(world.lock(*groups)), "--jobs", "2")
    assert set(run.verdicts.values()) == {"verified"}
    requests = world.index.requests[before:]
    assert len(requests) == 6 + 12  # 6 pages, 12 provenance documents
    assert len({r.client_port for r in requests}) <= 2


def test_403_is_unknown_a_warning_unless_strict_or_pinned(world: World, disabled: StaticIndex) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget")))
    run = world.verify(str(lock))
    assert run.code == 0
    assert set(run.verdicts.values()) == {"unattested"}
    assert "403" in run.doc["files"][0]["reason"]
    assert "unknown" in run.doc["files"][0]["reason"]
    assert world.verify(str(lock), "--strict").code == 1
    world.pin(**{name: gh_pin()})
    assert set(world.verify(str(lock)).verdicts.values()) == {"attestation-lost"}


def test_retries_server_errors_then_succeeds(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    entry = world.index.files[files[0].filename]
    real = world.index.provenance_path(entry)
    world.pin(**{name: gh_pin()})

    entry.provenance_url = f"{world.index.url}/hostile/flaky/2{real}"
    assert world.verify(str(world.lock(files)), "--retries", "2").verdicts == {files[0].filename: "verified"}

    entry.provenance_url = f"{world.index.url}/hostile/flaky/3{real}"
    run = world.verify(str(world.lock(files)), "--retries", "1")
    assert run.verdicts == {files[0].filename: "invalid"}
    assert "HTTP 503 (after 2 attempts)" in run.doc["files"][0]["reason"]


# ---------------------------------------------------------------------------------------------
# The cache: revalidation and --offline
# ---------------------------------------------------------------------------------------------


def test_online_runs_revalidate_and_notice_a_removed_provenance(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    filename = files[0].filename
    lock = world.lock(files)
    world.pin(**{name: gh_pin()})

    assert world.verify(str(lock)).verdicts == {filename: "verified"}
    second = world.verify(str(lock))
    assert second.verdicts == {filename: "verified"}
    revalidation = world.index.requests_to(f"/integrity/{name}/")[-1]
    assert revalidation.headers.get("if-none-match")
    assert revalidation.status == 304

    world.index.set_provenance(filename, None)
    lost = world.verify(str(lock))
    assert lost.verdicts == {filename: "attestation-lost"}
    assert "it served one before" in lost.doc["files"][0]["reason"]
    # The cache now records the absence, so an offline run agrees.
    assert world.verify(str(lock), "--offline").verdicts == {filename: "attestation-lost"}


def test_a_changed_provenance_is_fetched_again(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    f = files[0]
    world.pin(**{name: gh_pin()})
    lock = world.lock(files)
    assert world.verify(str(lock)).verdicts == {f.filename: "verified"}
    world.index.set_provenance(f.filename, world.attest(f.filename, f.sha256, *github("evil/widget")))
    assert world.verify(str(lock)).verdicts == {f.filename: "identity-changed"}


def test_offline_uses_only_the_cache_and_makes_no_request(world: World, dead_index: str) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.pin(**{name: gh_pin()})
    assert set(world.verify(str(world.lock(files))).verdicts.values()) == {"verified"}

    # The same files, locked against an index that does not exist: offline, only the cache.
    dead_lock = world.lock(files, path=world.tmp / "pylock.dead.toml", index=dead_index)
    before = len(world.index.requests)
    offline = world.verify(str(dead_lock), "--offline")
    assert offline.code == 0, offline.doc
    assert set(offline.verdicts.values()) == {"verified"}
    assert len(world.index.requests) == before

    # Online against the dead index: a clear failure, never verified.
    online = world.verify(str(dead_lock), "--retries", "0", "--timeout", "2")
    assert online.code == 1
    assert set(online.verdicts.values()) == {"invalid"}
    assert "connection failed" in online.doc["files"][0]["reason"]


def test_offline_cache_miss_is_a_clear_failure(world: World, dead_index: str) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    world.pin(**{name: gh_pin()})
    run = world.verify(str(world.lock(files, index=dead_index)), "--offline")
    assert run.code == 1
    assert run.verdicts == {files[0].filename: "invalid"}
    assert "never fetched into the cache" in run.doc["files"][0]["reason"]


def test_offline_remembers_unattested_files(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=None))
    assert set(world.verify(str(lock)).verdicts.values()) == {"unattested"}
    offline = world.verify(str(lock), "--offline")
    assert set(offline.verdicts.values()) == {"unattested"}
    assert "when last looked up" in offline.doc["files"][0]["reason"]


def test_the_default_cache_is_under_xdg_cache_home(world: World) -> None:
    name = world.name()
    lock = world.lock(world.publish(name, signer=github("acme/widget"), kinds=("wheel",)))
    env = world.env()
    result = CliRunner().invoke(
        main,
        [
            "verify",
            "--pins",
            str(world.pins_path),
            "--trust-root",
            str(world.authority.trusted_root_path),
            "--tofu",
            str(lock),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    cached = list((Path(str(env["XDG_CACHE_HOME"])) / "assay" / "verify").rglob("*"))
    assert any(p.is_file() and p.parent.parent.name == "provenance" for p in cached)


# ---------------------------------------------------------------------------------------------
# Indexes that misbehave
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        ("redirect-loop", "redirect loop"),
        ("endless", "exceeds the 10 MiB allowed"),
        ("huge", "more than the 10 MiB allowed"),
        ("hang", "no response within 0.5s"),
        ("server-error", "HTTP 500"),
        ("teapot", "answered HTTP 418"),
        ("not-json", "not JSON"),
        ("wrong-shape", "no publisher with a kind"),
    ],
)
def test_a_misbehaving_provenance_url_fails_that_file_clearly(world: World, hostile: str, message: str) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    world.index.files[files[0].filename].provenance_url = f"{world.index.url}/hostile/{hostile}"
    world.pin(**{name: gh_pin()})
    sent_before = world.index.hostile_bytes_sent

    # Only the hanging index needs the short deadline; the others get time to stream.
    timeout = "0.5" if hostile == "hang" else "10"
    run = world.verify(str(world.lock(files)), "--timeout", timeout, "--retries", "0")

    assert run.code == 1
    entry = run.doc["files"][0]
    assert entry["verdict"] == "invalid"
    assert entry["name"] == name
    assert message in entry["reason"]
    assert "Traceback" not in run.result.output
    if hostile == "endless":
        # Cut off at the cap: the server got to send little more than 10 MiB (socket
        # buffers), not the endless body it was trying to.
        assert world.index.hostile_bytes_sent - sent_before < 40 * MiB


def test_table_output_names_the_package_of_a_failure(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    world.index.files[files[0].filename].provenance_url = f"{world.index.url}/hostile/redirect-loop"
    run = world.verify(str(world.lock(files)), json_output=False)
    assert run.code == 1
    assert name in run.text
    assert "redirect loop" in run.text
    assert "Traceback" not in run.text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("html", "not the JSON simple API (PEP 691)"),
        ("missing", "has no project"),
        ("/hostile/hang", "no response within 0.5s"),
        ("/hostile/endless", "exceeds the 50 MiB allowed"),
    ],
)
def test_a_misbehaving_project_page_fails_its_files(world: World, override: str, message: str) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"))
    world.index.page_override[name] = override
    timeout = "0.5" if override.endswith("hang") else "10"
    run = world.verify(str(world.lock(files)), "--timeout", timeout, "--retries", "0")
    assert run.code == 1
    assert set(run.verdicts.values()) == {"invalid"}
    assert all(message in f["reason"] for f in run.doc["files"])


def test_a_lock_naming_a_file_the_index_does_not_have(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    lock = world.lock(files)
    del world.index.files[files[0].filename]
    world.publish(name, signer=github("acme/widget"), kinds=("sdist",))  # the project still exists
    run = world.verify(str(lock))
    assert run.verdicts == {files[0].filename: "invalid"}
    assert "does not list" in run.doc["files"][0]["reason"]


def test_an_index_serving_another_file_under_the_locked_name(world: World) -> None:
    name = world.name()
    files = world.publish(name, signer=github("acme/widget"), kinds=("wheel",))
    world.index.files[files[0].filename].listed_sha256 = "0" * 64
    run = world.verify(str(world.lock(files)))
    assert run.verdicts == {files[0].filename: "invalid"}
    assert "a different file under this name" in run.doc["files"][0]["reason"]
