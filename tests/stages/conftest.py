"""Staged releases (issue 14): a TLS index per backend (uv insists on https for Trusted
Publishing), with the OIDC stand-in trusted, and helpers for TOTP and ``assay release``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pyotp
import pytest
from click.testing import CliRunner

from assay.cli import main
from tests.support.oidc_provider import OIDCProvider
from tests.support.postgres import fresh_database
from tests.support.server import AssayServer
from tests.support.tls import TLS, tls_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def staged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider
) -> Iterator[AssayServer]:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if request.param == "postgresql" else None
        server = tls_server(tmp_path_factory.mktemp(f"staged-{request.param}"), tls, database_url=url).start()
        stack.callback(server.stop)
        server.cli("issuer", "add", "--issuer", idp.issuer)
        yield server


@dataclass
class Maintainer:
    name: str
    token: str
    totp: pyotp.TOTP

    def code(self) -> str:
        return self.totp.now()


def maintainer(server: AssayServer, name: str, project: str, role: str = "owner") -> Maintainer:
    """A user with ``role`` on ``project``, a token, and TOTP enrolled (the URI parsed as an
    authenticator app would)."""
    server.quick_user(name)
    server.cli("project", "role", project, name, role)
    uri = server.cli("user", "totp", "enable", name).stdout.strip().splitlines()[0]
    assert uri.startswith("otpauth://totp/"), uri
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return Maintainer(name, server.quick_token(name), totp)


def release_cli(server: AssayServer, *args: str, token: str | None = None) -> tuple[int, str]:
    """``assay release ARGS --repository-url <upload URL>`` in this process (click's runner),
    trusting the server's test CA; returns (exit code, output)."""
    env = (
        {"SSL_CERT_FILE": str(server.ca_file), "ASSAY_TOKEN": token}
        if token
        else {"SSL_CERT_FILE": str(server.ca_file)}
    )
    saved = os.environ.pop("ASSAY_TOKEN", None)
    try:
        result = CliRunner().invoke(
            main, ["release", *args, "--repository-url", server.upload_url], env=env, catch_exceptions=False
        )
    finally:
        if saved is not None:
            os.environ["ASSAY_TOKEN"] = saved
    return result.exit_code, result.output
