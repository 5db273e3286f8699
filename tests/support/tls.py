"""A test certificate authority (trustme) and an index served over TLS with it.

uv, twine and the PyPA action call https://<host>/_/oidc/... whatever the upload URL says, so
Trusted Publishing tests run the index over TLS with a CA only the test clients trust."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.support.server import AssayServer


@dataclass(frozen=True)
class TLS:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(directory: Path) -> TLS:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file = directory / "cert.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    key_file = directory / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    return TLS(ca_file, cert_file, key_file)


def tls_server(
    data_dir: Path, tls: TLS, *, database_url: str | None = None, args: tuple[str, ...] = ()
) -> AssayServer:
    return AssayServer(
        data_dir,
        database_url=database_url,
        args=["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file), *args],
        ca_file=tls.ca_file,
    )
