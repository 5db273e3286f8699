"""The mirror policy file (issue 12): TOML, one per index, as a typed model.

::

    [cooldown]
    min-age = "7d"                 # ISO 8601 durations and "7d" / "12h"
    exempt = ["certifi"]
    [provenance]
    require = "pinned"             # "none" (default) | "attested" | "pinned"
    pins = "pins.toml"             # relative to the policy file; .provenance.toml format
    tofu = true                    # record pins for projects that have none
    block-lost = true
    [projects]
    allow = []                     # empty: every project
    deny = ["evil-package"]
    [projects.override.some-project]
    require = "attested"           # a [provenance] or [cooldown] key, for one project

Unknown keys are errors (a typo must not silently widen the policy). Pins are read with
``assay verify``'s own reader (``assay.verify.pins.PinFile``), so one ``.provenance.toml``
serves both the mirror and the client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from packaging.utils import NormalizedName, canonicalize_name
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from assay.mirror.durations import DurationError, parse_duration
from assay.verify.errors import InputError
from assay.verify.pins import Pin, PinFile

Require = Literal["none", "attested", "pinned"]


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says where and what."""


def _duration(value: object) -> dt.timedelta | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError('a duration is a string such as "7d", "12h" or "P7D"')
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[dt.timedelta | None, BeforeValidator(_duration)]


def _names(value: object) -> object:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(canonicalize_name(v) for v in value)
    return value


Names = Annotated[frozenset[str], BeforeValidator(_names)]


class _Table(BaseModel):
    # No populate_by_name: "min_age" for "min-age" is a typo to report, not an alias.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Cooldown(_Table):
    min_age: Duration = Field(default=None, alias="min-age")
    exempt: Names = frozenset()


class Provenance(_Table):
    require: Require = "none"
    pins: str | None = None
    tofu: bool = False
    block_lost: bool = Field(default=False, alias="block-lost")


class Override(_Table):
    """One project's exceptions: any [cooldown] or [provenance] key that makes sense per
    project (``exempt`` and ``pins`` name projects themselves, so they stay global)."""

    min_age: Duration = Field(default=None, alias="min-age")
    require: Require | None = None
    tofu: bool | None = None
    block_lost: bool | None = Field(default=None, alias="block-lost")


class Projects(_Table):
    allow: Names = frozenset()
    deny: Names = frozenset()
    override: dict[str, Override] = Field(default_factory=dict)


class PolicyDocument(_Table):
    cooldown: Cooldown = Field(default_factory=Cooldown)
    provenance: Provenance = Field(default_factory=Provenance)
    projects: Projects = Field(default_factory=Projects)


@dataclass(frozen=True)
class Rules:
    """What applies to one project, overrides applied."""

    min_age: dt.timedelta | None
    require: Require
    tofu: bool
    block_lost: bool
    #: Hidden by the allow / deny lists: the reason, or None.
    listed_out: str | None


@dataclass(frozen=True)
class Policy:
    doc: PolicyDocument
    pins: dict[NormalizedName, Pin]
    #: The TOML and pins texts the policy was read from (what ``policy set`` stores).
    text: str
    pins_text: str | None
    source: str

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.text + "\0" + (self.pins_text or "")).encode()).hexdigest()

    def listed(self, name: NormalizedName) -> bool:
        """Whether the allow / deny lists let ``name`` through (what ``rules().listed_out``
        says, for the project list's many names at a set lookup each)."""
        allow, deny = self.doc.projects.allow, self.doc.projects.deny
        return name not in deny and (not allow or name in allow)

    def rules(self, project: str) -> Rules:
        name = canonicalize_name(project)
        doc = self.doc
        override = next((o for k, o in doc.projects.override.items() if canonicalize_name(k) == name), Override())
        min_age = override.min_age if override.min_age is not None else doc.cooldown.min_age
        if name in doc.cooldown.exempt:
            min_age = None
        listed_out = None
        if name in doc.projects.deny:
            listed_out = "on the policy's deny list"
        elif doc.projects.allow and name not in doc.projects.allow:
            listed_out = "not on the policy's allow list"
        return Rules(
            min_age=min_age,
            require=override.require or doc.provenance.require,
            tofu=override.tofu if override.tofu is not None else doc.provenance.tofu,
            block_lost=override.block_lost if override.block_lost is not None else doc.provenance.block_lost,
            listed_out=listed_out,
        )


#: No policy set: everything upstream serves passes (a plain mirror).
def empty_policy() -> Policy:
    return parse_policy("", None, source="(no policy)")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_policy(text: str, pins_text: str | None, *, source: str) -> Policy:
    """The policy in ``text`` (and the pins file's text, if it names one); ``PolicyError``
    saying what is wrong otherwise."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source} is not valid TOML: {exc}") from None
    try:
        doc = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_describe(exc)}") from None
    pins: dict[NormalizedName, Pin] = {}
    if doc.provenance.pins is not None:
        if pins_text is None:
            raise PolicyError(f"{source}: the pins file {doc.provenance.pins!r} does not exist")
        try:
            pins = PinFile.parse(Path(doc.provenance.pins), pins_text).pins
        except InputError as exc:
            raise PolicyError(f"{source}: pins file: {exc}") from None
    if doc.provenance.require == "pinned" and doc.provenance.pins is None and not doc.provenance.tofu:
        raise PolicyError(f'{source}: require = "pinned" needs pins = "<file>" or tofu = true')
    return Policy(doc, pins, text, pins_text, source)


def load_policy(path: Path) -> Policy:
    """Read a policy file and the pins file it names (relative to the policy file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc}") from None
    pins_text = None
    try:
        pins_name = tomllib.loads(text).get("provenance", {}).get("pins")
    except (tomllib.TOMLDecodeError, AttributeError):
        pins_name = None  # parse_policy says what is wrong
    if isinstance(pins_name, str):
        pins_path = path.parent / pins_name
        try:
            pins_text = pins_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(f"{path}: the pins file {pins_path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read the pins file {pins_path}: {exc}") from None
    return parse_policy(text, pins_text, source=str(path))
