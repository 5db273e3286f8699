"""Independent rebuilds (issue 14, item 4): an index trusting the local Sigstore authority, small
projects built here (one that rebuilds byte for byte, one whose backend writes the time into
the wheel), and a signer with the authority's certificates for ``assay.rebuilds.client``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.dists import write_project
from tests.support.server import AssayServer, serve_on
from tests.support.sigstore_authority import CertIdentity, LocalSigstore

#: The OIDC issuer of the rebuilders' (test) identities.
ISSUER = "https://oidc.rebuilders.example"
#: What the upstream release was built with: the sdist's members carry it, so a rebuild finds it.
EPOCH = 1_700_000_000


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore(tmp_path_factory.mktemp("rebuild-sigstore"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rb(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, authority: LocalSigstore
) -> Iterator[AssayServer]:
    """An index per backend whose Sigstore trust root is the local authority's."""
    yield from serve_on(
        tmp_path_factory.mktemp(f"rebuild-{request.param}"),
        request.param,
        args=("--sigstore-trust-root", str(authority.trusted_root_path)),
    )


@dataclass
class LocalSigner:
    """``assay.rebuilds.signing.Signer`` with the local authority: a Fulcio-shaped certificate
    for an e-mail identity, the statement logged in its Rekor stand-in."""

    authority: LocalSigstore
    email: str
    issuer: str = ISSUER

    def sign(self, filename: str, sha256: str, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
        attestation = self.authority.attest(
            filename, sha256, CertIdentity.email(self.email, self.issuer), predicate_type, predicate
        )
        doc: dict[str, Any] = attestation.model_dump(mode="json")
        return doc


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


def _build(src: Path, out: Path, index_url: str | None = None) -> Dists:
    """As a reproducible release is made: SOURCE_DATE_EPOCH for the sdist and the wheel; in
    this environment, or (``index_url``) in build's isolated one with the backend from that
    index alone."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    isolation = ["--no-isolation"]
    if index_url is not None:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index_url, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        isolation = []
    subprocess.run(
        [sys.executable, "-m", "build", *isolation, "--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return Dists(next(out.glob("*.tar.gz")), next(out.glob("*.whl")))


def reproducible_project(workdir: Path, name: str, version: str, index_url: str | None = None) -> Dists:
    """A tiny flit_core project (flit_core honours SOURCE_DATE_EPOCH)."""
    src = write_project(workdir, name, version, description="A reproducible test project")
    return _build(src, workdir / f"dist-{name}-{version}", index_url)


#: An in-tree PEP 517 backend (no requirements) that writes the build time into the wheel:
#: every build of it is a different wheel, whatever SOURCE_DATE_EPOCH says.
_STAMPING_BACKEND = """
import base64, hashlib, io, os, tarfile, time, zipfile

NAME, VERSION = "{name}", "{version}"
MOD = NAME.replace("-", "_")
META = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"


def _record(path, data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{{path}},sha256={{h}},{{len(data)}}\\n"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{{MOD}}-{{VERSION}}-py3-none-any.whl"
    info = f"{{MOD}}-{{VERSION}}.dist-info"
    files = {{
        f"{{MOD}}/__init__.py": b"X = 1\\n",
        f"{{MOD}}/built_at.txt": str(time.time_ns()).encode(),
        f"{{info}}/METADATA": META.encode(),
        f"{{info}}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: stamping\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = "".join(_record(p, d) for p, d in files.items()) + f"{{info}}/RECORD,,\\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in [*files.items(), (f"{{info}}/RECORD", record.encode())]:
            z.writestr(zipfile.ZipInfo(path, (2024, 1, 1, 0, 0, 0)), data)
    return name


def build_sdist(sdist_directory, config_settings=None):
    name = f"{{MOD}}-{{VERSION}}"
    here = os.path.dirname(os.path.abspath(__file__))
    with tarfile.open(os.path.join(sdist_directory, name + ".tar.gz"), "w:gz") as tar:
        for member in ("pyproject.toml", "stamping.py"):
            tar.add(os.path.join(here, member), f"{{name}}/{{member}}")
        data = (META).encode()
        info = tarfile.TarInfo(f"{{name}}/PKG-INFO")
        info.size, info.mtime = len(data), int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
        tar.addfile(info, io.BytesIO(data))
    return name + ".tar.gz"
"""


def unreproducible_project(workdir: Path, name: str, version: str) -> Dists:
    src = workdir / f"src-{name}-{version}"
    src.mkdir(parents=True)
    (src / "stamping.py").write_text(_STAMPING_BACKEND.format(name=name, version=version))
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = []
            build-backend = "stamping"
            backend-path = ["."]
            """
        )
    )
    return _build(src, workdir / f"dist-{name}-{version}")
