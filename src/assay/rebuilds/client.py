"""``assay rebuild``: download a release's sdist from the index (or a stage's preview index),
build its wheel (``build``), compare the bytes with the index's wheel of the same name, and
report the outcome to the index as a signed rebuild statement, a match or a mismatch.

The index's files are found on its PEP 691 JSON project page (``<base>/simple/<project>/``),
so the same code serves a live release and a stage (``<base>`` is then
``…/stage/<id>``, whose preview page lists the stage's files with the live ones); a file's
report goes to ``<base>/integrity/<project>/<version>/<filename>/rebuilds``. Imports nothing
of the server."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from assay.rebuilds import predicate
from assay.rebuilds.build import BuildFailed, build_wheels, sha256_of, source_date_epoch
from assay.rebuilds.signing import Signer
from assay.stages.client import ReleaseError, index_url, json_answer

PEP691 = "application/vnd.pypi.simple.v1+json"


class RebuildError(Exception):
    """Why a rebuild could not be done or reported; the message is for people."""


@dataclass(frozen=True, slots=True)
class IndexFile:
    filename: str
    url: str
    sha256: str


@dataclass
class Outcome:
    filename: str
    #: The index's wheel's sha256, or None when the index has no wheel of that name.
    sha256: str | None
    rebuilt_sha256: str
    #: "match", "mismatch", or "absent" (the index has no wheel of the name built here).
    outcome: str
    #: The index's answer to the report (None: not submitted).
    recorded: dict[str, Any] | None = None


@dataclass
class Report:
    project: str
    version: str
    sdist: str
    source_date_epoch: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.outcomes) and all(o.outcome == "match" for o in self.outcomes)


def _version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


class RebuildClient:
    def __init__(self, repository_url: str, *, token: str | None = None, timeout: float = 60) -> None:
        try:
            self.base = index_url(repository_url)
        except ReleaseError as exc:
            raise RebuildError(str(exc)) from None
        auth = ("__token__", token) if token else None
        self._http = httpx.Client(auth=auth, timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise RebuildError(f"could not reach {url}: {exc}") from None
        if response.status_code != 200:
            raise RebuildError(f"{url}: {response.status_code} {response.text.strip()[:300]}")
        return response

    def files(self, project: str, version: str) -> list[IndexFile]:
        """The release's files as the project page lists them."""
        try:
            wanted = Version(version)
        except InvalidVersion:
            raise RebuildError(f"invalid version {version!r} (PEP 440)") from None
        page_url = f"{self.base}/simple/{canonicalize_name(project)}/"
        page = self._get(page_url, headers={"accept": PEP691}).json()
        out = []
        for entry in page.get("files", []) if isinstance(page, dict) else []:
            name, url, hashes = entry.get("filename"), entry.get("url"), entry.get("hashes", {})
            if not isinstance(name, str) or not isinstance(url, str) or not isinstance(hashes, dict):
                continue
            if _version(name) == wanted and isinstance(hashes.get("sha256"), str):
                out.append(IndexFile(name, urljoin(page_url, url), hashes["sha256"].lower()))
        return out

    def download(self, f: IndexFile, into: Path) -> Path:
        target = into / f.filename
        digest = hashlib.sha256()
        try:
            with self._http.stream("GET", f.url) as response, target.open("wb") as out:
                if response.status_code != 200:
                    raise RebuildError(f"{f.url}: {response.status_code}")
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise RebuildError(f"could not download {f.url}: {exc}") from None
        if digest.hexdigest() != f.sha256:
            raise RebuildError(f"{f.filename}: downloaded sha256 {digest.hexdigest()} is not the page's {f.sha256}")
        return target

    def report_url(self, project: str, version: str, filename: str) -> str:
        return (
            f"{self.base}/integrity/{canonicalize_name(project)}/{quote(canonicalize_version(version))}/"
            f"{quote(filename)}/rebuilds"
        )

    def submit(self, project: str, version: str, filename: str, attestation: dict[str, Any]) -> dict[str, Any]:
        url = self.report_url(project, version, filename)
        try:
            response = self._http.post(url, json=attestation)
        except httpx.HTTPError as exc:
            raise RebuildError(f"could not reach {url}: {exc}") from None
        try:
            return json_answer(response, url)
        except ReleaseError as exc:
            raise RebuildError(str(exc)) from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _builder() -> dict[str, str]:
    def version_of(name: str) -> str:
        try:
            return dist_version(name)
        except PackageNotFoundError:  # pragma: no cover - build is a dependency
            return "unknown"

    return {"assay": version_of("assay"), "build": version_of("build"), "python": platform.python_version()}


def rebuild(
    client: RebuildClient,
    project: str,
    version: str,
    *,
    signer: Signer | None,
    no_isolation: bool = False,
    build_index_url: str | None = None,
    workdir: Path | None = None,
) -> Report:
    """Rebuild ``project`` ``version``'s wheel from its sdist and compare; with a ``signer``,
    report each built wheel the index also has (match or mismatch) to the index."""
    files = client.files(project, version)
    sdists = [f for f in files if f.filename.endswith(".tar.gz")]
    if not sdists:
        raise RebuildError(f"{project} {version} has no sdist (.tar.gz) on {client.base}: nothing to rebuild from")
    index_wheels = {f.filename: f for f in files if f.filename.endswith(".whl")}
    with tempfile.TemporaryDirectory(prefix="assay-rebuild-", dir=workdir) as tmp:
        work = Path(tmp)
        sdist_file = sdists[0]
        sdist = client.download(sdist_file, work)
        epoch = source_date_epoch(sdist)
        started = _now()
        try:
            built = build_wheels(sdist, work, epoch=epoch, no_isolation=no_isolation, index_url=build_index_url)
        except BuildFailed as exc:
            raise RebuildError(str(exc)) from None
        finished = _now()
        report = Report(project, version, sdist_file.filename, epoch)
        for wheel in built:
            theirs = index_wheels.get(wheel.path.name)
            if theirs is None:
                report.outcomes.append(Outcome(wheel.path.name, None, wheel.sha256, "absent"))
                continue
            outcome = Outcome(
                wheel.path.name, theirs.sha256, wheel.sha256, "match" if wheel.sha256 == theirs.sha256 else "mismatch"
            )
            if signer is not None:
                body = predicate.predicate(
                    filename=theirs.filename,
                    target_url=theirs.url,
                    sha256=theirs.sha256,
                    rebuilt_sha256=wheel.sha256,
                    sdist=sdist_file.filename,
                    sdist_url=sdist_file.url,
                    sdist_sha256=sha256_of(sdist),
                    source_date_epoch=epoch,
                    isolated=not no_isolation,
                    builder=_builder(),
                    started=started,
                    finished=finished,
                )
                attestation = signer.sign(theirs.filename, theirs.sha256, predicate.PREDICATE_TYPE, body)
                outcome.recorded = client.submit(project, version, theirs.filename, attestation)
            report.outcomes.append(outcome)
        return report
