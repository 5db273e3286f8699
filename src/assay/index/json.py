"""PEP 691 JSON serialization of the simple API model (with 592, 700, 714, 740, 792)."""

from __future__ import annotations

import json
from typing import Any

from assay.index.model import API_VERSION, ProjectList, ProjectPage, format_upload_time


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def render_project_list(page: ProjectList) -> str:
    return _dumps(
        {
            # PEP 691: every response has meta.api-version.
            "meta": {"api-version": API_VERSION, "_last-serial": page.serial},
            "projects": [{"name": p.name} for p in page.projects],
        }
    )


def render_project_page(page: ProjectPage) -> str:
    files: list[dict[str, Any]] = []
    for f in page.files:
        entry: dict[str, Any] = {
            "filename": f.filename,
            "url": f.url,
            # PEP 691: hashes MUST be present; sha256 recommended.
            "hashes": {"sha256": f.sha256},
            # PEP 700: size is required from API 1.1, upload-time optional (a mirrored file
            # passes on what its upstream gave: nothing, from a PEP 503 HTML page).
            **({"size": f.size} if f.size is not None else {}),
            **({"upload-time": format_upload_time(f.upload_time)} if f.upload_time is not None else {}),
            # PEP 592 / 691: false, or the reason (a non-empty string), or true.
            "yanked": f.yanked if f.yanked != "" else True,
        }
        if f.requires_python:
            entry["requires-python"] = f.requires_python
        if f.core_metadata_sha256:
            # PEP 714: "core-metadata" only. The old JSON key "dist-info-metadata" makes
            # pip < 23.2 fail hard, which is why PEP 714 renamed it.
            entry["core-metadata"] = {"sha256": f.core_metadata_sha256}
        else:
            entry["core-metadata"] = False
        # PEP 740: provenance is a URL or null.
        entry["provenance"] = f.provenance_url
        # The file's transparency-log receipt (C2SP tlog-proof, docs/log-format.md "Receipts"):
        # derived from the file URL, no lookup. PEP 691 reserves keys with a leading
        # underscore for the index server's own use.
        if f.logged:
            entry["_assay_log_receipt"] = f.url + ".tlog-proof"
        files.append(entry)
    return _dumps(
        {
            "meta": {"api-version": API_VERSION, "_last-serial": page.serial},
            "name": page.name,
            # PEP 700: every version of the project.
            "versions": list(page.versions),
            "files": files,
            # PEP 792: the project-status object.
            "project-status": {"status": page.status.status}
            | ({"reason": page.status.reason} if page.status.reason else {}),
        }
    )
