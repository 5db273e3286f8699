"""Issue 10, item 14: refused uploads and refused token exchanges leave a trace.

Each refusal is an INFO line in the server's log naming the attempt (the token's public id or
the uploader; the OIDC token's issuer, subject and repository) and never a secret; the
security-relevant ones are rows of ``assay admin audit``, one per (source, action, reason) and
window with a ``count``, so a flood does not grow the table. Both backends, over HTTP, read back
through the installed ``assay admin audit --json``.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from tests.support.dists import make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer
from tests.support.upload import upload


def _refusals(index: AssayServer, action: str, total: int) -> dict[str, dict[str, Any]]:
    """reason -> its audit row, for the rows of ``action``, once their counts add up to
    ``total`` (repeats within a second are written together at the end of it)."""
    deadline = time.monotonic() + 10
    while True:
        rows = [e for e in index.audit() if e["action"] == action]
        if sum(e["details"]["count"] for e in rows) >= total or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_reason = {str(e["target"]): e for e in rows}
    assert len(by_reason) == len(rows), rows  # one row per reason: repeats were counted
    return by_reason


def _log_lines(index: AssayServer, marker: str) -> list[str]:
    time.sleep(0.3)  # let the log reader catch up
    return [line for line in index.log if marker in line]


def test_refused_uploads_are_logged_and_audited(index: AssayServer, tmp_path: Path, unique: str) -> None:
    owner = f"owner-{unique}"
    mine, other = unique, f"{unique}-other"
    token = index.quick_token(owner)
    scoped = index.quick_token(owner, mine)
    revoked = index.quick_token(owner)
    index.cli("token", "revoke", revoked)
    token_id = token.removeprefix("assay-").split("_")[0]
    scoped_id = scoped.removeprefix("assay-").split("_")[0]
    revoked_id = revoked.removeprefix("assay-").split("_")[0]
    # Ten guesses, each with another token id: one row still, counting ten.
    guesses = [f"assay-{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}" for _ in range(10)]
    wheel = make_wheel(tmp_path, mine, "2.0")
    (tmp_path / "other").mkdir()
    with index.client() as http:
        assert upload(http, make_wheel(tmp_path, mine, "1.0"), token).status_code == 200
        assert upload(http, make_wheel(tmp_path, other, "1.0"), token).status_code == 200
        for guess in guesses:
            assert upload(http, wheel, guess).status_code == 403
        assert upload(http, wheel, revoked).status_code == 403
        assert upload(http, make_wheel(tmp_path, other, "2.0"), scoped).status_code == 403
        different = make_wheel(tmp_path / "other", mine, "1.0", extra_files={"x.py": b"# other bytes\n"})
        assert upload(http, different, token).status_code == 400  # a conflict: logged only
        assert upload(http, wheel, token, attestations="[]").status_code == 400

    rows = _refusals(index, "upload:refused", 13)
    assert set(rows) == {"invalid-token", "revoked-token", "wrong-project", "bad-attestation"}
    summary = {
        reason: (row["actor"], row["token_id"], row["project"], row["remote_addr"], row["details"]["count"],
                 row["details"]["status"])
        for reason, row in rows.items()
    }
    assert summary == {
        "invalid-token": ("anonymous", guesses[0][6:22], None, "127.0.0.1", 10, 403),
        "revoked-token": ("anonymous", revoked_id, None, "127.0.0.1", 1, 403),
        "wrong-project": (f"user:{owner}", scoped_id, other, "127.0.0.1", 1, 403),
        "bad-attestation": (f"user:{owner}", token_id, mine, "127.0.0.1", 1, 400),
    }
    assert rows["revoked-token"]["details"]["message"] == "This API token has been revoked."
    assert rows["invalid-token"]["details"]["last_seen"] >= rows["invalid-token"]["time"]

    lines = _log_lines(index, "upload refused:")
    assert len(lines) == 10 + 4, lines
    assert sum("403 invalid-token" in line and f"token {g[6:22]}," in line for g in guesses for line in lines) == 10
    assert any("403 wrong-project" in line and f"project {other} by user:{owner}, token {scoped_id}" in line
               for line in lines)
    assert any("400 conflict" in line and f"token {token_id}" in line for line in lines)
    output = "\n".join(index.log)
    for secret in [token, scoped, revoked, *guesses]:
        assert secret.split("_", 1)[1] not in output


def test_refused_exchanges_are_logged_and_audited(index: AssayServer, idp: OIDCProvider, unique: str) -> None:
    owner = f"owner-{unique}"
    index.quick_user(owner)
    index.cli("issuer", "add", "--issuer", idp.issuer)
    index.cli("project", "create", unique, "--owner", owner)
    index.cli(
        "publisher", "add", "github", "--project", unique, "--issuer", idp.issuer,
        "--repository", f"acme/{unique}", "--workflow", "release.yml",
    )
    intruders = [idp.token("assay", github_claims(f"evil/{unique}")) for _ in range(3)]
    expired = idp.expired_token("assay", github_claims(f"acme/{unique}"))
    with index.client() as http:
        for jwt in intruders:
            refused = http.post("/_/oidc/mint-token", json={"token": jwt})
            assert (refused.status_code, refused.json()["errors"][0]["code"]) == (422, "invalid-publisher")
        assert http.post("/_/oidc/mint-token", json={"token": expired}).json()["errors"][0]["code"] == "invalid-token"
        assert http.post("/_/oidc/mint-token", content=b"not json").status_code == 422
        good = http.post("/_/oidc/mint-token", json={"token": idp.token("assay", github_claims(f"acme/{unique}"))})
        assert good.status_code == 200

    rows = _refusals(index, "oidc:mint-refused", 5)
    assert set(rows) == {"invalid-publisher", "invalid-token", "invalid-payload"}
    publisher = rows["invalid-publisher"]
    assert publisher["details"]["count"] == 3
    assert publisher["remote_addr"] == "127.0.0.1"
    assert publisher["details"]["iss"] == idp.issuer
    assert publisher["details"]["repository"] == f"evil/{unique}"
    assert publisher["details"]["sub"].startswith(f"repo:evil/{unique}:")
    assert rows["invalid-token"]["details"]["repository"] == f"acme/{unique}"
    assert rows["invalid-payload"]["details"]["count"] == 1

    lines = _log_lines(index, "token exchange refused:")
    assert len(lines) == 5, lines
    assert sum("invalid-publisher" in line and f"issuer {idp.issuer}," in line
               and f"repository evil/{unique}," in line for line in lines) == 3
    output = "\n".join(index.log)
    for jwt in [*intruders, expired]:
        assert jwt.split(".")[1] not in output
        assert jwt.split(".")[2] not in output


def test_refusal_reasons_are_the_errors_codes_not_their_wording(
    index: AssayServer, tmp_path: Path, unique: str
) -> None:
    """Issue 11: the reason code is the one the refusing code set, not guessed from the message.
    Guessing from the wording misfiled a scoped token aimed at a project whose name contains
    "single-use" as token-reused, and an Authorization scheme named "Required..." as
    no-credentials, which is not audited (so a probe could dodge the audit by its wording)."""
    owner = f"owner-{unique}"
    other = f"{unique}-single-use"
    token = index.quick_token(owner)
    scoped = index.quick_token(owner, unique)
    scheme = f"Required-{unique}"
    with index.client() as http:
        assert upload(http, make_wheel(tmp_path, other, "1.0"), token).status_code == 200
        assert upload(http, make_wheel(tmp_path, other, "2.0"), scoped).status_code == 403
        probe = http.post("/legacy/", headers={"Authorization": f"{scheme} x"}, content=b"")
        assert probe.status_code == 401

    lines = _log_lines(index, "upload refused:")
    reasons = {line.split("upload refused: ", 1)[1].split(" (", 1)[0] for line in lines if unique in line}
    assert reasons == {"403 wrong-project", "401 invalid-token"}
