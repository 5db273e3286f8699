"""PyPI's JSON API (``/pypi/<project>/json`` and ``/pypi/<project>/<version>/json``).

Not a standard, but many tools read it (pip-audit, dependabot, uv's `--exclude-newer` helpers,
release checkers), so the shape follows PyPI's: ``info``, ``last_serial``, ``releases``,
``urls``, ``vulnerabilities``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from sqlalchemy.orm import Session

from assay.index import rebuild_reports
from assay.index.model import FileLink, ProjectPage, format_upload_time
from assay.index.pages import ProjectHead
from assay.index.paths import file_path, provenance_path, public_key
from assay.index.provenance_state import ReleaseProvenance, file_sources, release_states
from assay.indexes import IndexRef
from assay.log.approvals import Approval, StatementError, read_unverified
from assay.storage.models import ApprovalStatement, File, Release, Role, User

#: Core metadata (packaging.metadata raw names) -> PyPI JSON "info" keys.
_INFO_KEYS = {
    "author": "author",
    "author_email": "author_email",
    "classifiers": "classifiers",
    "description": "description",
    "description_content_type": "description_content_type",
    "download_url": "download_url",
    "dynamic": "dynamic",
    "home_page": "home_page",
    "keywords": "keywords",
    "license": "license",
    "license_expression": "license_expression",
    "license_files": "license_files",
    "maintainer": "maintainer",
    "maintainer_email": "maintainer_email",
    "platforms": "platform",
    "project_urls": "project_urls",
    "provides_extra": "provides_extra",
    "requires_dist": "requires_dist",
    "summary": "summary",
}


def _vkey(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:  # pragma: no cover
        return Version("0")


def _maintainer_signatures(provenance: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue 14, item 5: the maintainers whose signatures the index verified at upload (the
    provenance's ``Maintainer`` publisher blocks, assay.publishers.maintainer)."""
    bundles = provenance.get("attestation_bundles") if isinstance(provenance, dict) else None
    return [
        dict(b["publisher"])
        for b in bundles or []
        if isinstance(b, dict) and isinstance(b.get("publisher"), dict) and b["publisher"].get("kind") == "Maintainer"
    ]


def _file_dict(
    index: IndexRef,
    f: File,
    release: Release,
    head: ProjectHead,
    base: str,
    approved: Approvals,
    rebuilds: _Rebuilds | None = None,
) -> dict[str, Any]:
    upload = f.upload_time.astimezone(dt.UTC)
    approval = approved.of(f)
    return {
        "comment_text": "",
        "digests": {"blake2b_256": f.blake2_256, "md5": f.md5, "sha256": f.sha256},
        "downloads": -1,
        "filename": f.filename,
        "has_sig": False,
        "md5_digest": f.md5,
        "packagetype": f.packagetype,
        "python_version": f.python_version,
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": upload.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": format_upload_time(upload),
        "url": base + file_path(public_key(index, f.blob_key)),
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason if release.yanked else None,
        # PEP 714 metadata file (PyPI added this key for bandersnatch).
        "core_metadata": {"sha256": f.metadata_sha256} if f.metadata_sha256 else False,
        # Trusted Publishing: the OIDC claims of the token that uploaded the file (issuer,
        # repository, workflow ref, commit, run id, environment), or null for API tokens.
        "trusted_publisher": f.publisher_claims,
        # PEP 740 provenance (not in PyPI's JSON API; added here so tools need one request).
        "provenance": (
            base + provenance_path(head.normalized_name, release.version, f.filename)
            if f.provenance is not None
            else None
        ),
        # Issue 14, item 4: registered rebuilders' verified reports on these bytes (who, when,
        # match or mismatch with both digests); the attestations are at the file's /rebuilds.
        "rebuilds": (rebuilds or {}).get(f.filename, []),
        # Issue 14, item 5 (not in PyPI's JSON API): the stage approval that made the file live
        # (who approved, when, who triggered the upload, and the statement signed by the
        # index's log key: verify it against /log/key), or null for a file published directly.
        "approval": approval.to_json() if approval is not None else None,
        # ... and the maintainers who signed it (PEP 740 attestations verified at upload).
        "maintainer_signatures": _maintainer_signatures(f.provenance),
    }


def _info(release: Release, head: ProjectHead, base: str, prov: ReleaseProvenance | None) -> dict[str, Any]:
    meta = release.core_metadata or {}
    info: dict[str, Any] = {key: None for key in _INFO_KEYS.values()}
    for src, dst in _INFO_KEYS.items():
        if src in meta:
            info[dst] = meta[src]
    if isinstance(info.get("keywords"), list):
        info["keywords"] = ",".join(info["keywords"])
    info.update(
        {
            "name": head.name,
            "version": release.version,
            "requires_python": release.requires_python,
            "yanked": release.yanked,
            "yanked_reason": release.yanked_reason if release.yanked else None,
            "package_url": f"{base}/project/{head.normalized_name}/",
            "project_url": f"{base}/project/{head.normalized_name}/",
            "release_url": f"{base}/project/{head.normalized_name}/{release.version}/",
            "bugtrack_url": None,
            "docs_url": None,
            "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
            "project_status": {"status": head.status}
            | ({"reason": head.status_reason} if head.status_reason else {}),
            # Issue 15: the release's provenance over time (assay.index.provenance_state: none,
            # full, partial, inconsistent, lost, changed); the web pages show the same value.
            # Not in PyPI's JSON API.
            "provenance_state": prov.state if prov else "none",
        }
    )
    return info


_Rebuilds = dict[str, list[dict[str, Any]]]


@dataclass
class Approvals:
    """A project's signed approval statements, by the files they made live."""

    by_file: dict[tuple[str, str], Approval]

    @classmethod
    def load(cls, session: Session, project_id: int) -> Approvals:
        by_file: dict[tuple[str, str], Approval] = {}
        notes = session.execute(
            sa.select(ApprovalStatement.note)
            .where(ApprovalStatement.project_id == project_id)
            .order_by(ApprovalStatement.id)
        ).scalars()
        for text in notes:
            try:
                approval = read_unverified(text)
            except StatementError:  # pragma: no cover - the index wrote it
                continue
            for sha256, filename in approval.files:
                by_file[(filename, sha256)] = approval
        return cls(by_file)

    def of(self, f: File) -> Approval | None:
        return self.by_file.get((f.filename, f.sha256.lower()))


@dataclass
class _Loaded:
    releases: list[Release]
    files: dict[int, list[File]]  # release id -> its files
    approvals: Approvals

    def of(self, release: Release) -> list[File]:
        return self.files.get(release.id, [])

    def states(self) -> dict[str, ReleaseProvenance]:
        ordered = sorted(self.releases, key=lambda r: _vkey(r.version))
        return release_states((r.version, [file_sources(f.provenance) for f in self.of(r)]) for r in ordered)


def _load(session: Session, head: ProjectHead) -> _Loaded:
    releases = list(session.execute(sa.select(Release).where(Release.project_id == head.id)).scalars())
    files: dict[int, list[File]] = {}
    # PEP 792: a quarantined project offers no files.
    if head.status != "quarantined":
        rows = session.execute(
            sa.select(File).where(File.project_id == head.id).order_by(File.filename)
        ).scalars()
        for f in rows:
            files.setdefault(f.release_id, []).append(f)
    return _Loaded(releases, files, Approvals.load(session, head.id))


def _rebuilds(session: Session, head: ProjectHead, files: list[File], version: str | None = None) -> _Rebuilds:
    """Issue 14, item 4: the wheels' rebuild reports (``index.rebuild_reports``)."""
    wheels = [(f.filename, f.sha256) for f in files if f.packagetype == "bdist_wheel"]
    return rebuild_reports.of_project(session, head.id, wheels, version=version)


def _latest(loaded: _Loaded) -> Release | None:
    """PyPI's choice: the newest final, non-yanked release with files; failing that the newest
    non-yanked one, then the newest of all."""
    with_files = [r for r in loaded.releases if loaded.of(r)]
    candidates = [r for r in with_files if not r.yanked] or with_files or loaded.releases
    if not candidates:
        return None
    finals = [r for r in candidates if not _vkey(r.version).is_prerelease]
    return max(finals or candidates, key=lambda r: _vkey(r.version))


def project_json(session: Session, index: IndexRef, head: ProjectHead, base: str) -> dict[str, Any] | None:
    loaded = _load(session, head)
    latest = _latest(loaded)
    if latest is None:
        return None
    ordered = sorted(loaded.releases, key=lambda r: _vkey(r.version))
    roles = session.execute(
        sa.select(Role.role, User.username)
        .join(User, Role.user_id == User.id)
        .where(Role.project_id == head.id)
        .order_by(User.username)
    ).all()
    rebuilds = _rebuilds(session, head, [f for fs in loaded.files.values() for f in fs])
    return {
        "info": _info(latest, head, base, loaded.states().get(latest.version)),
        "last_serial": head.serial,
        "releases": {
            r.version: [_file_dict(index, f, r, head, base, loaded.approvals, rebuilds) for f in loaded.of(r)]
            for r in ordered
        },
        "urls": [_file_dict(index, f, latest, head, base, loaded.approvals, rebuilds) for f in loaded.of(latest)],
        "ownership": {"roles": [{"role": role.capitalize(), "user": user} for role, user in roles]},
        "vulnerabilities": [],
    }


def release_json(
    session: Session, index: IndexRef, head: ProjectHead, version: str, base: str
) -> dict[str, Any] | None:
    loaded = _load(session, head)
    try:
        wanted = canonicalize_version(Version(version))
    except InvalidVersion:
        return None
    match = next((r for r in loaded.releases if r.canonical_version == wanted), None)
    if match is None:
        return None
    rebuilds = _rebuilds(session, head, loaded.of(match), match.canonical_version)
    return {
        "info": _info(match, head, base, loaded.states().get(match.version)),
        "last_serial": head.serial,
        "urls": [_file_dict(index, f, match, head, base, loaded.approvals, rebuilds) for f in loaded.of(match)],
        "vulnerabilities": [],
    }


# ---- mirrored projects (issue 12) ------------------------------------------------------------
#
# A project an index serves from upstream has no rows here: its JSON comes from the page the
# mirror decided (assay.index.mirrors.MirroredPage), so it lists exactly the files the simple
# page does (the policy's hidden files are absent) and every URL is assay's own. What a simple
# page does not carry (the core metadata's summary, requires_dist, ...) is null, as PyPI gives
# for a field a release did not set; tools that need it read the PEP 658 ``.metadata`` file.


def _file_version(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _mirrored_file_dict(f: FileLink, base: str) -> dict[str, Any]:
    wheel = f.filename.endswith(".whl")
    upload = f.upload_time.astimezone(dt.UTC) if f.upload_time is not None else None
    return {
        "comment_text": "",
        # Upstream's simple page gives sha256 only (the one hash assay checks the bytes against).
        "digests": {"blake2b_256": None, "md5": None, "sha256": f.sha256},
        "downloads": -1,
        "filename": f.filename,
        "has_sig": False,
        "md5_digest": None,
        "packagetype": "bdist_wheel" if wheel else "sdist",
        # PyPI's python_version: the wheel's python tag (PEP 427 ``{python tag}-{abi}-{platform}``).
        "python_version": f.filename.removesuffix(".whl").split("-")[-3] if wheel else "source",
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": upload.strftime("%Y-%m-%dT%H:%M:%S") if upload else None,
        "upload_time_iso_8601": format_upload_time(upload) if upload else None,
        # The page's URLs are relative to /simple/<project>/ ("../../files/..."): below the index.
        "url": base + f.url.removeprefix("../.."),
        "yanked": f.yanked is not False,
        "yanked_reason": f.yanked if isinstance(f.yanked, str) and f.yanked else None,
        "core_metadata": {"sha256": f.core_metadata_sha256} if f.core_metadata_sha256 else False,
        "trusted_publisher": None,
        "provenance": f.provenance_url,
        # The hosted files' issue-14 members, in the same shape: this index holds no rebuild
        # reports, approvals or maintainer records for upstream's files.
        "rebuilds": [],
        "approval": None,
        "maintainer_signatures": [],
    }


@dataclass(frozen=True)
class _MirroredRelease:
    version: str
    files: list[FileLink]

    @property
    def yanked(self) -> bool:
        # PyPI yanks releases; a simple page yanks files (PEP 592): a release is yanked when
        # every file it still offers is.
        return bool(self.files) and all(f.yanked is not False for f in self.files)

    @property
    def yanked_reason(self) -> str | None:
        return next((f.yanked for f in self.files if isinstance(f.yanked, str) and f.yanked), None)


def _mirrored_releases(page: ProjectPage) -> list[_MirroredRelease]:
    by_version: dict[str, list[FileLink]] = {v: [] for v in page.versions}
    for f in page.files:
        version = _file_version(f.filename)
        if version is not None:
            by_version.setdefault(version, []).append(f)
    releases = [_MirroredRelease(v, files) for v, files in by_version.items()]
    return sorted(releases, key=lambda r: _vkey(r.version))


def _mirrored_info(page: ProjectPage, release: _MirroredRelease, base: str) -> dict[str, Any]:
    info: dict[str, Any] = {key: None for key in _INFO_KEYS.values()}
    info.update(
        {
            "name": page.name,
            "version": release.version,
            "requires_python": next((f.requires_python for f in release.files if f.requires_python), None),
            "yanked": release.yanked,
            "yanked_reason": release.yanked_reason,
            "package_url": f"{base}/project/{page.name}/",
            "project_url": f"{base}/project/{page.name}/",
            "release_url": f"{base}/project/{page.name}/{release.version}/",
            "bugtrack_url": None,
            "docs_url": None,
            "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
            "project_status": {"status": page.status.status}
            | ({"reason": page.status.reason} if page.status.reason else {}),
        }
    )
    return info


def mirrored_project_json(page: ProjectPage, base: str) -> dict[str, Any] | None:
    """``/pypi/<project>/json`` of a mirrored project, from its decided page (None: nothing to
    show, every release hidden: a 404 as for a project without releases)."""
    releases = _mirrored_releases(page)
    with_files = [r for r in releases if r.files]
    candidates = [r for r in with_files if not r.yanked] or with_files
    if not candidates:
        return None
    finals = [r for r in candidates if not _vkey(r.version).is_prerelease]
    latest = max(finals or candidates, key=lambda r: _vkey(r.version))
    return {
        "info": _mirrored_info(page, latest, base),
        "last_serial": page.serial,
        "releases": {r.version: [_mirrored_file_dict(f, base) for f in r.files] for r in releases},
        "urls": [_mirrored_file_dict(f, base) for f in latest.files],
        "vulnerabilities": [],
    }


def mirrored_release_json(page: ProjectPage, version: str, base: str) -> dict[str, Any] | None:
    """``/pypi/<project>/<version>/json`` of a mirrored project (None: no such version, or none
    of its files passes the policy)."""
    try:
        wanted = canonicalize_version(Version(version))
    except InvalidVersion:
        return None
    match = next(
        (r for r in _mirrored_releases(page) if r.files and canonicalize_version(_vkey(r.version)) == wanted), None
    )
    if match is None:
        return None
    return {
        "info": _mirrored_info(page, match, base),
        "last_serial": page.serial,
        "urls": [_mirrored_file_dict(f, base) for f in match.files],
        "vulnerabilities": [],
    }
