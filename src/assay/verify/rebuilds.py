"""Rebuild pins (issue 14, item 4): a package's wheels must have been reproduced by K of the
rebuilders its pin names. In ``.provenance.toml``, beside (or instead of) the publisher pin::

    [packages.widget]
    kind = "GitHub"                  # optional here: a rebuild pin may stand alone
    repository = "acme/widget"
    workflow = "release.yml"
    rebuilt-by = [
      { issuer = "https://accounts.example", email = "rebuilder@other.example" },
      { issuer = "https://ci.other.example", subject = "https://ci.other.example/rebuild" },
    ]
    rebuilds = 2                     # optional: how many of them (default: all listed)

For each wheel of such a package ``assay verify`` fetches the index's rebuild reports
(``…/integrity/<project>/<version>/<filename>/rebuilds``) and checks every one itself
(``assay.rebuilds.check``: the Sigstore signature under the run's trust root, the signer one
of the pinned rebuilders, the statement about these exact bytes); what the index says about
them counts for nothing. Fewer than K distinct pinned rebuilders with a matching report is
the ``not-reproduced`` failure. Sdists are the source, not rebuilt: a rebuild pin does not
apply to them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_version

from assay.attestations.trust import TrustRoot
from assay.rebuilds.check import Expected, RebuildInvalid, check
from assay.verify.errors import FetchError, InputError
from assay.verify.files import LockedFile

#: The keys of a package's pin table this module reads.
KEYS = ("rebuilt-by", "rebuilds")
#: An answer listing a file's reports stays small (attestations of a few KiB each).
MAX_ANSWER = 4 * 1024 * 1024


@dataclass(frozen=True)
class RebuildPin:
    rebuilders: tuple[Expected, ...]
    required: int
    #: The entries as written (``email`` or ``subject``), to write the file back unchanged.
    tables: tuple[dict[str, str], ...] = field(compare=False)

    def summary(self) -> str:
        return f"{self.required} of {', '.join(f'{r.identity} ({r.issuer})' for r in self.rebuilders)}"

    def to_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"rebuilt-by": [dict(t) for t in self.tables]}
        if self.required != len(self.rebuilders):
            table["rebuilds"] = self.required
        return table


def parse(name: str, table: Mapping[str, Any], *, where: str) -> RebuildPin | None:
    """The rebuild pin of ``[packages.NAME]``, or None when it has none; raises ``InputError``."""
    if "rebuilt-by" not in table:
        if "rebuilds" in table:
            raise InputError(f"{where}: [packages.{name}] rebuilds needs rebuilt-by = [...] (whose rebuilds count)")
        return None
    entries = table["rebuilt-by"]
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where}: [packages.{name}] rebuilt-by must be a non-empty list of {{issuer, email|subject}}")
    rebuilders, tables = [], []
    for number, entry in enumerate(entries):
        here = f"{where}: [packages.{name}] rebuilt-by[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("issuer"), str):
            raise InputError(f'{here} needs issuer = "<OIDC issuer URL>"')
        unknown = sorted(set(entry) - {"issuer", "email", "subject"})
        if unknown:
            raise InputError(f"{here} has unknown key(s) {', '.join(unknown)} (allowed: issuer, email, subject)")
        identities = [(k, entry[k]) for k in ("email", "subject") if k in entry]
        if len(identities) != 1 or not isinstance(identities[0][1], str) or not identities[0][1]:
            raise InputError(f"{here} needs exactly one of email and subject (the certificate's SAN)")
        kind, identity = identities[0]
        rebuilders.append(Expected(entry["issuer"], identity, kind))
        tables.append({k: str(v) for k, v in entry.items()})
    required = table.get("rebuilds", len(rebuilders))
    if not isinstance(required, int) or isinstance(required, bool) or not 1 <= required <= len(rebuilders):
        raise InputError(f"{where}: [packages.{name}] rebuilds must be between 1 and {len(rebuilders)} (those listed)")
    return RebuildPin(tuple(rebuilders), required, tuple(tables))


def reports_url(file: LockedFile) -> str | None:
    """The Integrity API's ``/rebuilds`` URL of a wheel, from its simple index URL."""
    if file.index is None or file.filename is None or file.version is None:
        return None
    base = file.index.rstrip("/")
    if not base.endswith("/simple"):
        return None
    base = base[: -len("/simple")]
    return f"{base}/integrity/{file.name}/{quote(canonicalize_version(file.version))}/{quote(file.filename)}/rebuilds"


@dataclass(frozen=True)
class RebuildResult:
    #: The pinned rebuilders whose signed reports match the file, as "identity (issuer)".
    reproduced_by: tuple[str, ...]
    #: Pinned rebuilders who reported a mismatch: "identity: rebuilt sha256:<hex>".
    mismatches: tuple[str, ...]
    #: Reports that did not verify (not counted), with why.
    invalid: tuple[str, ...]


def judge(answer: bytes, file: LockedFile, pin: RebuildPin, trust: TrustRoot) -> RebuildResult:
    """Check every report of an index's answer; raises ``ValueError`` for an unusable answer."""
    doc = json.loads(answer)
    reports = doc.get("rebuilds") if isinstance(doc, dict) else None
    if not isinstance(reports, list):
        raise ValueError("the answer has no rebuilds list")
    assert file.filename is not None
    assert file.sha256 is not None
    matched: dict[int, str] = {}
    mismatches, invalid = [], []
    for report in reports:
        raw = report.get("attestation") if isinstance(report, dict) else None
        try:
            got = check(raw, filename=file.filename, sha256=file.sha256, expected=pin.rebuilders, trust=trust)
        except RebuildInvalid as exc:
            invalid.append(str(exc))
            continue
        who = pin.rebuilders[got.signer]
        label = f"{who.identity} ({who.issuer})"
        if got.claim.outcome == "match":
            matched[got.signer] = label
        else:
            mismatches.append(f"{label}: rebuilt sha256:{got.claim.rebuilt_sha256}")
    return RebuildResult(tuple(matched[k] for k in sorted(matched)), tuple(mismatches), tuple(invalid))


def fetch(http: Any, url: str) -> bytes | None:
    """The answer's bytes; None when the index has no reports endpoint for the file (404)."""
    try:
        got = http.get(url, accept="application/json", limit=MAX_ANSWER)
    except FetchError:
        raise
    if got.status == 404:
        return None
    if got.status != 200:
        raise FetchError(f"{url}: HTTP {got.status}")
    body: bytes = got.body
    return body
