"""Publisher pins: which identity each package must be attested by.

A pin is reviewed data, committed next to the lock. It is the *only* source of the identity a
file is checked against: the provenance's own ``publisher`` block is index-asserted and unsigned
(PEP 740, "the publisher block is not signed"), so it is used only to propose a pin
(``--tofu``, ``assay pins diff``) and to explain a change.

Where pins come from, first match wins for a package:

1. ``.provenance.toml`` (or ``--pins FILE``)::

       [packages.sampleproject]
       kind = "GitHub"
       repository = "pypa/sampleproject"
       workflow = "release.yml"
       environment = "pypi"            # optional
       comment = "reviewed 2026-11-02"  # optional

   One table per normalized package name, with ``kind`` and that kind's identifying fields
   (each kind's identity class says which: ``required`` and ``pin_optional``, in
   ``assay.publishers``). Unknown keys are errors: a typo must not silently widen a pin.

   Issue 14, item 5: ``approved = true`` in a table requires every file of the package to
   have gone live by a stage's approval, proven by the index's signed approval statement
   (``assay.verify.approvals``); with a ``kind`` or alone (a table with only ``approved`` and
   ``comment`` pins no identity). A maintainer's own identity is pinned as ``kind =
   "Maintainer"``, ``issuer`` and ``email`` or ``subject`` (``assay.publishers.maintainer``).

2. ``.provenance.txt`` next to it (or ``--pins FILE`` itself, when FILE is in this format:
   the reader is chosen by content, not name), the format of the older ``pypi-verify-now`` tool: one
   ``name repository-URL`` pair per line. Such a pin names a github.com or gitlab.com
   repository but no workflow, so it accepts **any workflow of that repository** (the old tool
   took the workflow from the index's publisher block, which amounts to the same). Run
   ``assay pins update NAME`` to replace it with a full pin in ``.provenance.toml``.

3. The lock's own ``[[packages.attestation-identities]]`` (PEP 751), which ``assay verify
   --write-lock-identities`` records: a file is accepted if it is attested by any of them.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w
from packaging.pylock import Pylock
from packaging.utils import NormalizedName, canonicalize_name

from assay.publishers import Identity, IdentityError, from_publisher
from assay.publishers.base import RepositoryPin
from assay.publishers.github import GitHubRepository
from assay.publishers.gitlab import GitLabRepository
from assay.publishers.registry import IDENTITIES
from assay.verify import rebuilds as rebuild_pins
from assay.verify.errors import InputError
from assay.verify.rebuilds import RebuildPin

__all__ = ["GitHubRepository", "GitLabRepository", "RepositoryPin"]  # the legacy format's pins

PINS_FILE = ".provenance.toml"
LEGACY_PINS_FILE = ".provenance.txt"

_HEADER = (
    "# Publisher pins for `assay verify`: the identity each package must be attested by.\n"
    "# Review every change to this file like a change to the code it lets in.\n\n"
)


#: What a pin can name: a full publisher identity, or (from the old format) a repository.
Matcher = Identity | RepositoryPin


@dataclass(frozen=True)
class Pin:
    """The identities a package's files must be attested by (any one of them, per file)."""

    matchers: tuple[Matcher, ...]
    #: Where the pin was read, for messages (``.provenance.toml``, ``.provenance.txt:3``).
    source: str
    comment: str | None = field(default=None, compare=False)

    def summary(self) -> str:
        return " or ".join(m.summary() for m in self.matchers)


# --------------------------------------------------------------------------------------------
# The .provenance.toml table of each kind
# --------------------------------------------------------------------------------------------


def pin_fields(matcher: Matcher) -> dict[str, str]:
    """The pin table of ``matcher`` (``kind`` first, then its fields; defaults left out)."""
    return matcher.pin_table()


def proposal(identity: Identity) -> Identity:
    """The pin to propose for an identity read from a publisher block: its identifying fields
    only (each kind's ``proposal``: a CircleCI pin names the project and pipeline definition,
    not the branch it last ran on; an OIDC pin drops the informative claims)."""
    return identity.proposal()


def _identity_from_table(name: str, table: Mapping[str, Any], *, where: str) -> Identity:
    kind = table.get("kind")
    cls = IDENTITIES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(IDENTITIES)
        raise InputError(f"{where}: [packages.{name}] needs a kind, one of: {known}")
    required, optional = cls.required, cls.pin_optional
    block: dict[str, Any] = {"kind": kind}
    for key, value in table.items():
        if key in ("kind", "comment"):
            continue
        target = cls.pin_aliases.get(key, key)
        if target not in required and target not in optional:
            allowed = ", ".join([*required, *optional, "comment"])
            raise InputError(
                f"{where}: [packages.{name}] has an unknown key {key!r} for kind {kind} (allowed: {allowed})"
            )
        if not isinstance(value, str):
            raise InputError(f"{where}: [packages.{name}] {key} must be a string")
        block[target] = value
    missing = [f for f in required if not block.get(f)]
    if missing:
        raise InputError(
            f"{where}: [packages.{name}] ({kind}) is missing {', '.join(missing)}; "
            f"a pin names at least {', '.join(required)}"
        )
    try:
        return from_publisher(block)
    except IdentityError as exc:
        raise InputError(f"{where}: [packages.{name}]: {exc}") from None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class PinFile:
    """``.provenance.toml``: the pins it holds, and how to write it back."""

    path: Path
    pins: dict[NormalizedName, Pin] = field(default_factory=dict)
    #: ``[log."<index URL>"] key = "<verifier key>"``: the pinned transparency-log key of an
    #: index (assay.verify.logcheck); pinned by --tofu from ``/log/key``, never re-pinned.
    log_keys: dict[str, str] = field(default_factory=dict)
    #: ``[log."<index URL>"] witnesses = ["<cosignature/v1 verifier key>", ...]``: the witnesses
    #: whose cosignatures ``--require-witnesses`` counts on that index's checkpoints.
    log_witnesses: dict[str, list[str]] = field(default_factory=dict)
    #: ``rebuilt-by = [...]`` / ``rebuilds = K`` of a package (issue 14, item 4:
    #: ``assay.verify.rebuilds``), with or without a publisher pin beside it.
    rebuilds: dict[NormalizedName, RebuildPin] = field(default_factory=dict)
    #: ``approved = true``: packages whose files must carry a signed stage approval (issue 14).
    approved: set[NormalizedName] = field(default_factory=set)
    #: Comments of tables that pin no identity (``approved``, ``rebuilt-by`` alone), kept when
    #: the file is written back.
    bare_comments: dict[NormalizedName, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> PinFile:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not a readable TOML pins file: {exc}") from None
        return cls.parse(path, text)

    @classmethod
    def parse(cls, path: Path, text: str) -> PinFile:
        pin_file = cls(path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path} is not a readable TOML pins file: {exc}") from None
        unknown = sorted(set(raw) - {"packages", "log"})
        if unknown:
            raise InputError(
                f"{path}: unknown top-level key(s) {', '.join(unknown)}; pins live in [packages.<name>] tables"
            )
        packages = raw.get("packages", {})
        if not isinstance(packages, dict):
            raise InputError(f"{path}: 'packages' must be a table of [packages.<name>] tables")
        for key, table in packages.items():
            if not isinstance(table, dict):
                raise InputError(f"{path}: packages.{key} must be a table")
            name = canonicalize_name(key)
            if name in pin_file.pins or name in pin_file.rebuilds or name in pin_file.approved:
                raise InputError(f"{path}: {key!r} and another table both pin {name}")
            comment = table.get("comment")
            if comment is not None and not isinstance(comment, str):
                raise InputError(f"{path}: [packages.{key}] comment must be a string")
            rebuild_pin = rebuild_pins.parse(key, table, where=str(path))
            if rebuild_pin is not None:
                pin_file.rebuilds[name] = rebuild_pin
            table = {k: v for k, v in table.items() if k not in rebuild_pins.KEYS}
            approved = table.pop("approved", False)
            if not isinstance(approved, bool):
                raise InputError(f"{path}: [packages.{key}] approved must be true or false")
            if approved:
                pin_file.approved.add(name)
            if (approved or rebuild_pin is not None) and set(table) <= {"comment"}:
                if comment:
                    pin_file.bare_comments[name] = comment
                continue  # an approval or rebuild requirement only, no identity pinned
            identity = _identity_from_table(key, table, where=str(path))
            pin_file.pins[name] = Pin((identity,), source=path.name, comment=comment)
        logs = raw.get("log", {})
        if not isinstance(logs, dict):
            raise InputError(f"{path}: 'log' must be a table of [log.\"<index URL>\"] tables")
        for url, table in logs.items():
            if not isinstance(table, dict) or not isinstance(table.get("key"), str):
                raise InputError(f"{path}: [log.{url!r}] needs key = \"<log verifier key>\"")
            pin_file.log_keys[url] = table["key"]
            witnesses = table.get("witnesses", [])
            if not isinstance(witnesses, list) or not all(isinstance(w, str) for w in witnesses):
                raise InputError(f"{path}: [log.{url!r}] witnesses must be a list of witness verifier keys")
            if witnesses:
                pin_file.log_witnesses[url] = list(witnesses)
        return pin_file

    def set(self, name: NormalizedName, matcher: Matcher, *, comment: str | None = None) -> None:
        old = self.pins.get(name)
        keep = comment if comment is not None else (old.comment if old else None)
        self.pins[name] = Pin((matcher,), source=self.path.name, comment=keep)

    def remove(self, name: NormalizedName) -> None:
        self.pins.pop(name, None)

    def dumps(self) -> str:
        packages: dict[str, dict[str, Any]] = {}
        for name in sorted({*self.pins, *self.rebuilds, *self.approved}):
            pin = self.pins.get(name)
            table: dict[str, Any] = {}
            if pin is not None:
                table.update(pin_fields(pin.matchers[0]))
            if name in self.approved:
                table["approved"] = True
            if (rebuild_pin := self.rebuilds.get(name)) is not None:
                table.update(rebuild_pin.to_table())
            comment = pin.comment if pin is not None else self.bare_comments.get(name)
            if comment:
                table["comment"] = comment
            packages[name] = table
        doc: dict[str, Any] = {"packages": packages}
        if self.log_keys:
            doc["log"] = {
                url: {"key": key, **({"witnesses": w} if (w := self.log_witnesses.get(url)) else {})}
                for url, key in sorted(self.log_keys.items())
            }
        return _HEADER + tomli_w.dumps(doc)

    def save(self) -> None:
        write_atomically(self.path, self.dumps())


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so a crash never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _repository_from_url(url: str, *, where: str) -> Matcher:
    parts = urlsplit(url.strip())
    path = parts.path.strip("/")
    path = path.removesuffix(".git")
    host = (parts.hostname or "").lower()
    if parts.scheme in ("https", "http") and path.count("/") >= 1:
        if host == "github.com" and path.count("/") == 1:
            return GitHubRepository(repository=path)
        if host == "gitlab.com":
            return GitLabRepository(repository=path)
    raise InputError(
        f"{where}: {url!r} is not a github.com or gitlab.com repository URL; pin this package "
        f"in {PINS_FILE} with its kind instead"
    )


def load_legacy_pins(path: Path) -> dict[NormalizedName, Pin]:
    """Read the ``pypi-verify-now`` format: ``name URL`` per line (blank lines and ``#``
    comments tolerated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not readable: {exc}") from None
    return parse_legacy_pins(path, text)


def parse_legacy_pins(path: Path, text: str) -> dict[NormalizedName, Pin]:
    pins: dict[NormalizedName, Pin] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        where = f"{path}:{number}"
        words = content.split()
        if len(words) != 2:
            raise InputError(f"{where}: expected 'name repository-URL', got {line.strip()!r}")
        name = canonicalize_name(words[0])
        pins[name] = Pin((_repository_from_url(words[1], where=where),), source=f"{path.name}:{number}")
    return pins


def is_legacy_format(text: str) -> bool:
    """Whether ``text`` is a ``.provenance.txt`` (``name URL`` lines) rather than TOML, whatever
    the file is called: someone moving from ``pypi-verify-now`` passes that file to ``--pins``.

    Decided by content: text TOML can read is TOML (an empty or comment-only file reads the
    same either way); otherwise it is the old format when no line looks like TOML (a
    ``[table]`` header or a ``key = value``), so that a broken TOML file gets TOML's error
    rather than a complaint about 'name URL' lines."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    else:
        return False
    for line in text.splitlines():
        content = line.split("#", 1)[0].strip()
        if content.startswith("[") or "=" in content.split("://", 1)[0]:
            return False
    return True


def lock_pins(lock: Pylock, *, source: str) -> dict[NormalizedName, Pin]:
    """PEP 751 ``[[packages.attestation-identities]]``: a ``kind`` plus that kind's keys, as in
    a PEP 740 publisher block. A package may list several; a file may match any."""
    pins: dict[NormalizedName, Pin] = {}
    for package in lock.packages:
        entries = package.attestation_identities or ()
        matchers: list[Matcher] = []
        for number, entry in enumerate(entries):
            block = dict(entry)
            cls = IDENTITIES.get(str(block.get("kind")))
            for alias, target in (cls.pin_aliases if cls else {}).items():
                if alias in block and target not in block:
                    block[target] = block.pop(alias)
            try:
                matchers.append(from_publisher(block))
            except IdentityError as exc:
                raise InputError(f"{source}: package {package.name} attestation-identities[{number}]: {exc}") from None
        if matchers:
            pins[package.name] = Pin(tuple(matchers), source=f"{source} attestation-identities")
    return pins


@dataclass
class PinSet:
    """Every pin in effect for a run, and the file ``--tofu`` and ``pins update`` write to."""

    file: PinFile
    legacy: dict[NormalizedName, Pin] = field(default_factory=dict)
    from_lock: dict[NormalizedName, Pin] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, *, lock_pins: Mapping[NormalizedName, Pin] | None = None) -> PinSet:
        """``path`` in whichever format it is (see ``is_legacy_format``), plus the other
        file of the pair beside it: the ``.provenance.txt`` next to a TOML pins file, or the
        ``.provenance.toml`` next to an old-format file, which is also where ``--tofu`` and
        ``assay pins update`` write (the old format cannot hold a full pin)."""
        from_lock = dict(lock_pins or {})
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path} is not a readable pins file: {exc}") from None
        if text is not None and is_legacy_format(text):
            toml_path = path.with_name(PINS_FILE)
            if toml_path == path:  # an old-format file named .provenance.toml: nowhere to write
                raise InputError(
                    f"{path} is in the old 'name repository-URL' format; rename it to "
                    f"{LEGACY_PINS_FILE} (or pass it with --pins under that name)"
                )
            return cls(file=PinFile.load(toml_path), legacy=parse_legacy_pins(path, text), from_lock=from_lock)
        pin_file = PinFile.parse(path, text) if text is not None else PinFile(path)
        legacy_path = path.with_name(LEGACY_PINS_FILE)
        legacy = load_legacy_pins(legacy_path) if legacy_path != path else {}
        return cls(file=pin_file, legacy=legacy, from_lock=from_lock)

    def get(self, name: NormalizedName) -> Pin | None:
        return self.file.pins.get(name) or self.legacy.get(name) or self.from_lock.get(name)

    def names(self) -> Iterable[NormalizedName]:
        return {*self.file.pins, *self.legacy, *self.from_lock}
