"""``approved = true`` pins (issue 14, item 5): a package's files must have gone live by a
stage's approval, proven by the index's signed approval statement (docs/releases.md, "Signed
statement"; ``assay.log.approvals``).

Per file of such a package: the statements of its release, from the index's
``/_/releases/<project>/<version>/approvals`` (one request per release), each verified under
the index's log key as pinned in ``.provenance.toml`` (``[log."<index URL>"] key``, which
``--tofu`` pins from ``/log/key``); the file is approved when one of them names its project,
its version and this very file (filename and the sha256 the input pins). Otherwise the verdict
is ``unapproved``: a release published directly, a statement signed by another key (a forgery,
or another index), or no pinned key to check it with. An approval is reported in the file's
reason ("approved by alice at ..."). Online only: an ``--offline`` run cannot check approvals
and says so (``unapproved``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)

from assay.log import note
from assay.log.approvals import Approval, StatementError, open_statement
from assay.verify.errors import FetchError
from assay.verify.files import LockedFile
from assay.verify.logcheck import log_base

if TYPE_CHECKING:
    from assay.verify.fetch import Http

#: The statements of one release are a few KiB; bounded like any answer from an index.
MAX_STATEMENTS = 1 << 20


@dataclass(frozen=True)
class Checked:
    approval: Approval | None
    #: Why the file is not approved (None when it is).
    problem: str | None


def _version(file: LockedFile) -> str | None:
    if file.version:
        return file.version
    name = file.filename or ""
    try:
        if name.endswith(".whl"):
            return str(parse_wheel_filename(name)[1])
        return str(parse_sdist_filename(name)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


class ApprovalChecker:
    def __init__(self, http: Http | None, log_keys: Mapping[str, str]) -> None:
        self.http = http
        self.log_keys = log_keys
        self._statements: dict[str, list[str] | str] = {}

    def _fetch(self, url: str) -> list[str] | str:
        """The statements at ``url``, or why they could not be had."""
        if url in self._statements:
            return self._statements[url]
        assert self.http is not None
        result: list[str] | str
        try:
            response = self.http.get(url, accept="application/json", limit=MAX_STATEMENTS)
        except FetchError as exc:
            result = f"cannot fetch the approval statements: {exc}"
        else:
            if response.status == 404:
                result = []
            elif response.status != 200:
                result = f"the approval statements answered HTTP {response.status}"
            else:
                try:
                    doc = json.loads(response.body)
                    statements = doc["statements"]
                    if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
                        raise TypeError
                    result = list(statements)
                except (ValueError, KeyError, TypeError):
                    result = 'the index\'s approval statements are not {"statements": [<signed note>, ...]}'
        self._statements[url] = result
        return result

    def check(self, file: LockedFile) -> Checked:
        index, filename, sha256 = file.index, file.filename, file.sha256
        if index is None or filename is None or sha256 is None:
            return Checked(None, "approved = true, but this entry is not a file of an index")
        key = self.log_keys.get(index)
        if key is None:
            return Checked(
                None,
                f"approved = true needs the log key of {index} pinned to verify its approval statements "
                "(run with --tofu once to pin it from its /log/key)",
            )
        if self.http is None:
            return Checked(None, "approved = true cannot be checked offline (the approval statements are fetched)")
        version = _version(file)
        if version is None:
            return Checked(None, f"approved = true, but the version of {filename} is not known")
        try:
            verifier = note.Ed25519Verifier.from_verifier_key(key)
        except note.NoteError as exc:
            return Checked(None, f"the log key pinned for {index} is not a verifier key: {exc}")
        url = urljoin(log_base(index), f"_/releases/{quote(file.name)}/{quote(version)}/approvals")
        statements = self._fetch(url)
        if isinstance(statements, str):
            return Checked(None, statements)
        problems: list[str] = []
        for statement in statements:
            try:
                approval = open_statement(statement, verifier)
            except StatementError as exc:
                problems.append(str(exc))
                continue
            if (
                approval.project == file.name
                and canonicalize_version(approval.version) == canonicalize_version(version)
                and approval.covers(filename, sha256)
            ):
                return Checked(approval, None)
        why = f" ({'; '.join(problems)})" if problems else ""
        return Checked(
            None,
            f"the pin requires approved = true, but no approval statement signed by the log key of {index} "
            f"covers {filename} with sha256 {sha256} (a release published directly is not approved){why}",
        )
