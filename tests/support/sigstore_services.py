"""Fulcio and Rekor v1 HTTP endpoints over `LocalSigstore`, for clients that sign through the
`sigstore` library (``assay publish --identity-token``).

A **test stand-in** for an organisation's own Sigstore deployment, on 127.0.0.1 (plain HTTP):

* ``POST /api/v2/signingCert`` (Fulcio v2): the OIDC identity token in ``Authorization:
  Bearer``, verified with PyJWT against the issuer's JWKS (the OIDC stand-in's), audience
  ``sigstore``; the CSR's signature is checked; the certificate is `LocalSigstore`'s
  (embedded SCT), for the token's ``email`` (when ``email_verified``) as an e-mail SAN, else
  its ``sub`` as a URI SAN, with the token's ``iss`` as the Fulcio issuer extension, as
  Fulcio does for e-mail and generic issuers. Answers the chain as PEM in
  ``signedCertificateEmbeddedSct``.
* ``POST /api/v1/log/entries`` (Rekor v1): a proposed ``dsse`` 0.0.1 entry
  (``proposedContent``: the envelope JSON and the certificate); logged by `LocalSigstore`
  and answered in Rekor v1's ``{uuid: {body, integratedTime, logID, logIndex, verification}}``
  form.

``client_trust_config()`` is the sigstore ``ClientTrustConfig`` (trusted root plus signing
config naming these URLs) that both the signer and an index's ``--sigstore-trust-root`` read.
Not implemented: Fulcio's other endpoints and other proposed entry kinds, Rekor's reads and
search, timestamp authorities, the OIDC login flow itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.sigstore_authority import CertIdentity, LocalSigstore

SIGSTORE_AUDIENCE = "sigstore"


class SigstoreServices:
    def __init__(self, authority: LocalSigstore, jwks_path: Path) -> None:
        self.authority = authority
        self.jwks_path = jwks_path
        #: Every certificate issued, with the identity it names (for tests to inspect).
        self.issued: list[CertIdentity] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SigstoreServices:
        services = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                try:
                    if self.path == "/api/v2/signingCert":
                        status, answer = services._signing_cert(self.headers.get("authorization", ""), body)
                    elif self.path == "/api/v1/log/entries":
                        status, answer = services._log_entry(body)
                    else:
                        status, answer = 404, {"message": f"no endpoint {self.path}"}
                except ValueError as exc:
                    status, answer = 400, {"message": str(exc)}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client_trust_config(self) -> dict[str, Any]:
        start = datetime.fromtimestamp(self.authority.valid_from.timestamp(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def service(url: str) -> dict[str, Any]:
            return {"url": url, "majorApiVersion": 1, "validFor": {"start": start}, "operator": "local-sigstore"}

        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.authority.trusted_root_json(),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service(self.url)],
                "oidcUrls": [],
                "rekorTlogUrls": [service(self.url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }

    def write_client_trust_config(self, path: Path) -> Path:
        path.write_text(json.dumps(self.client_trust_config(), indent=2))
        return path

    # -- Fulcio ---------------------------------------------------------------------------------

    def _signing_cert(self, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 401, {"message": "an OIDC identity token is required (Authorization: Bearer)"}
        keys = jwt.PyJWKSet.from_json(self.jwks_path.read_text())
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys.keys if k.key_id == kid), None)
        if key is None:
            return 401, {"message": f"unknown signing key {kid!r}"}
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm_name],
                audience=SIGSTORE_AUDIENCE,
                options={"require": ["iss", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            return 401, {"message": f"invalid identity token: {exc}"}
        request = json.loads(body)
        csr = x509.load_pem_x509_csr(base64.b64decode(request["certificateSigningRequest"]))
        if not csr.is_signature_valid:
            return 400, {"message": "the CSR's signature does not verify (no proof of possession)"}
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return 400, {"message": "only ECDSA keys are supported"}
        if isinstance(claims.get("email"), str) and claims.get("email_verified") is True:
            identity = CertIdentity.email(claims["email"], claims["iss"])
        else:
            identity = CertIdentity(san=str(claims["sub"]), issuer=claims["iss"], extensions={})
        certificate = self.authority._issue_certificate(public_key, identity, datetime.now(UTC))
        self.issued.append(identity)
        pem = serialization.Encoding.PEM
        chain = [
            certificate.public_bytes(pem).decode(),
            self.authority.intermediate_certificate.public_bytes(pem).decode(),
            self.authority.root_certificate.public_bytes(pem).decode(),
        ]
        return 201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    # -- Rekor ----------------------------------------------------------------------------------

    def _log_entry(self, body: bytes) -> tuple[int, dict[str, Any]]:
        proposed = json.loads(body)
        if proposed.get("kind") != "dsse":
            return 400, {"message": "only dsse entries are supported"}
        content = proposed["spec"]["proposedContent"]
        envelope = json.loads(content["envelope"])
        (verifier,) = content["verifiers"]
        certificate = x509.load_pem_x509_certificate(base64.b64decode(verifier))
        statement = base64.b64decode(envelope["payload"])
        (signature,) = envelope["signatures"]
        now = int(datetime.now(UTC).timestamp())
        entry = self.authority._log_dsse(statement, base64.b64decode(signature["sig"]), certificate, now)
        proof = entry["inclusionProof"]
        body_b64 = entry["canonicalizedBody"]
        uuid = hashlib.sha256(b"\x00" + base64.b64decode(body_b64)).hexdigest()
        return 201, {
            uuid: {
                "body": body_b64,
                "integratedTime": int(entry["integratedTime"]),
                "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
                "logIndex": int(entry["logIndex"]),
                "verification": {
                    "inclusionProof": {
                        "checkpoint": proof["checkpoint"]["envelope"],
                        "hashes": [base64.b64decode(h).hex() for h in proof["hashes"]],
                        "logIndex": int(proof["logIndex"]),
                        "rootHash": base64.b64decode(proof["rootHash"]).hex(),
                        "treeSize": int(proof["treeSize"]),
                    },
                    "signedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                },
            }
        }
