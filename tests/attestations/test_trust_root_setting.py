"""The ``sigstore_trust_root`` setting: checked at start as far as it can be without sigstore, and
loaded by the first upload that carries attestations (assay.attestations.deferred)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.index.test_serve import serve_cmd
from tests.support.dists import make_wheel
from tests.support.server import AssayServer
from tests.support.upload import upload

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json", "is not readable JSON"),
        ("[1, 2]", "is not a Sigstore trusted root"),
    ],
)
def test_an_unusable_trust_root_file_stops_the_server_at_start(
    tmp_path: Path, content: str | None, message: str
) -> None:
    root = tmp_path / "trusted_root.json"
    if content is not None:
        root.write_text(content)
    result = serve_cmd("--data-dir", str(tmp_path / "data"), "--port", "0", "--sigstore-trust-root", str(root))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"sigstore_trust_root: trust root file {root} {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_root_only_sigstore_can_refuse_fails_attested_uploads_and_nothing_else(tmp_path: Path) -> None:
    # JSON, an object, but not a trusted root: only sigstore can tell, and it is loaded by the
    # first attested upload. That upload is refused (503, with the reason), nothing of it is
    # stored, and uploads without attestations go on working.
    root = tmp_path / "trusted_root.json"
    root.write_text('{"mediaType": "not a trusted root"}')
    server = AssayServer(tmp_path / "data", args=["--sigstore-trust-root", str(root)]).start()
    try:
        token = server.quick_token("alice")
        attested = make_wheel(tmp_path, "rooted", "1.0")
        plain = make_wheel(tmp_path, "rooted", "1.1")
        with server.client() as http:
            for _ in range(2):  # the next attested upload tries again, and fails the same way
                r = upload(http, attested, token, attestations="[]")
                assert r.status_code == 503, r.text
                assert "cannot verify attestations now: its Sigstore trust root is not usable" in r.text
                assert str(root) in r.text
            assert upload(http, plain, token).status_code == 200
            page = http.get("/simple/rooted/", headers={"Accept": JSON_V1}).json()
        assert [f["filename"] for f in page["files"]] == [plain.name]
        assert any("cannot verify attestations" in line for line in server.log)
    finally:
        server.stop()
