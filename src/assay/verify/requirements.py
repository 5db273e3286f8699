"""Hash-pinned requirements files (pip's ``--require-hashes`` format), as files to verify.

A line such as ``sampleproject==4.0.0 --hash=sha256:<hex> --hash=sha256:<hex>`` names a
project, one exact version and the sha256 of every file it may be installed from. Which file
has which hash is not written down: the project's index page (PEP 691 ``files[].hashes``)
says, so these entries become ``LockedFile``s without a filename, matched on the index later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from assay.verify.errors import InputError, read_input
from assay.verify.files import LockedFile, checked_sha256

#: pip's comment rule: ``#`` at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")

#: Options that name another source of files; entries found only there will not be on the
#: index, and are reported as such, per file.
_IGNORED_OPTIONS = {
    "--extra-index-url",
    "--find-links",
    "-f",
    "--trusted-host",
    "--pre",
    "--prefer-binary",
    "--no-binary",
    "--only-binary",
    "--use-feature",
    "--no-index",
}


@dataclass(frozen=True)
class RequirementsFile:
    files: list[LockedFile]
    #: ``--index-url`` / ``-i`` written in the file, if any.
    index_url: str | None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations (as pip does) and drop comments; keeps line numbers."""
    lines: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            lines.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        lines.append((start, buffer.strip()))
    return lines


def _option_value(tokens: list[str], i: int, where: str) -> tuple[str, int]:
    token = tokens[i]
    if "=" in token:
        return token.split("=", 1)[1], i + 1
    if i + 1 >= len(tokens):
        raise InputError(f"{where}: {token} needs a value")
    return tokens[i + 1], i + 2


def parse_requirements(text: str, *, source: str) -> RequirementsFile:
    files: list[LockedFile] = []
    index_url: str | None = None
    for number, line in _logical_lines(text):
        where = f"{source}:{number}"
        tokens = line.split()
        if tokens[0].startswith("-"):
            option = tokens[0].split("=", 1)[0]
            if option in ("-i", "--index-url"):
                index_url, _ = _option_value(tokens, 0, where)
            elif option in ("-e", "--editable"):
                raise InputError(f"{where}: editable requirements cannot be hash-pinned or attested")
            elif option in ("-r", "--requirement", "-c", "--constraint"):
                raise InputError(f"{where}: nested requirement files are not read; pass each file with its own -r")
            elif option not in _IGNORED_OPTIONS:
                raise InputError(f"{where}: unsupported option {option}")
            continue
        split = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        spec, options = " ".join(tokens[:split]), tokens[split:]
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise InputError(f"{where}: not a requirement ({exc})") from None
        name = canonicalize_name(requirement.name)
        hashes: list[str] = []
        i = 0
        while i < len(options):
            if options[i].split("=", 1)[0] != "--hash":
                raise InputError(f"{where}: {requirement.name}: unsupported option {options[i]}")
            value, i = _option_value(options, i, where)
            algorithm, _, digest = value.partition(":")
            if algorithm != "sha256":
                raise InputError(
                    f"{where}: {requirement.name}: --hash={value[:20]}... is not sha256; PEP 740 "
                    "attestations sign sha256 digests (regenerate with sha256 hashes)"
                )
            hashes.append(checked_sha256(digest, where=f"{where}: {requirement.name}"))
        if not hashes:
            raise InputError(
                f"{where}: {requirement.name} has no --hash; assay verify needs hash-pinned "
                "requirements (pip-compile --generate-hashes, uv pip compile --generate-hashes)"
            )
        if requirement.url:
            filename = unquote(urlsplit(requirement.url).path.rsplit("/", 1)[-1])
            files += [
                LockedFile(
                    name=name,
                    version=None,
                    filename=filename,
                    sha256=h,
                    index=None,
                    url=requirement.url,
                    not_on_index="a direct URL requirement",
                )
                for h in hashes
            ]
            continue
        pinned = [s for s in requirement.specifier if s.operator in ("==", "===")]
        if len(pinned) != 1 or "*" in pinned[0].version:
            raise InputError(
                f"{where}: {requirement.name} must be pinned to one version with == "
                f"(got {str(requirement.specifier) or 'no version'})"
            )
        version = pinned[0].version
        files += [LockedFile(name=name, version=version, filename=None, sha256=h, index=None) for h in hashes]
    if index_url:
        # The file's own --index-url plays the part of a lock's per-package index.
        files = [f if f.not_on_index else replace(f, index=index_url) for f in files]
    return RequirementsFile(files=files, index_url=index_url)


def load_requirements(path: Path) -> RequirementsFile:
    return parse_requirements(read_input(path), source=str(path))
