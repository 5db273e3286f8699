"""What every publisher kind is made of (``assay.publishers``' package docstring has the map).

A kind is one class (the way Warehouse's ``oidc/models/github.py`` owns one provider) with

* ``Config``: the typed, validated configuration an admin registers (stored as the row's
  ``config`` JSON, validated again into ``Config`` whenever a row is read);
* ``claim_checks``: the token claim -> check table (Warehouse's ``__required_verifiable_claims__``
  and ``__optional_verifiable_claims__``), run in order by ``check``;
* ``lookup`` / ``match_key`` / ``identifies``: which rows a token is a candidate for, and whether
  a refusing row is the token's own workload (so its reason may be told);
* ``stored_claims``: what is kept with every file its tokens upload;
* ``identity``: the PEP 740 signing identity (``Identity``: publisher block, Sigstore policy, pin
  table) its attestations must carry;
* ``cli_options``: the ``assay admin publisher add <kind>`` options, generated from ``Config``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import click
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo
from pydantic.fields import FieldInfo

if TYPE_CHECKING:
    from sigstore.verify.policy import VerificationPolicy

from assay.config import ConfigError

Claims = Mapping[str, Any]


class Mismatch(Exception):
    """The token's claims do not match this publisher; the message says which claim."""


class IdentityError(ValueError):
    """A publisher block or identity description that cannot be used; says what is wrong."""


def text(claims: Claims, name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ("" if value is None else str(value))


def https_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{what} must be an https:// URL, got {value!r}")
    return value.rstrip("/")


def origin(issuer: str) -> str:
    """The scheme and host of an issuer URL (a self-hosted forge's instance)."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}"


def registering(info: ValidationInfo) -> bool:
    """Whether a validator runs on an admin's new configuration (``PublisherKind.configure``)
    rather than on a stored one (``load``): rules added after rows were stored (the claim pattern
    language) refuse new input but must not make an old row unreadable."""
    return bool(info.context and info.context.get("registering"))


# ---------------------------------------------------------------------------------- Config


class KindConfig(BaseModel):
    """A kind's configuration. Fields carry their CLI help as ``description``; ``cli(...)``
    metadata adjusts the generated option (another flag name, optional on the command line
    because ``prepare`` derives it, NAME=VALUE pairs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Keys left out of the stored form when None (added after rows were stored without them,
    #: so that the stored form, and the lookup key computed from it, stays what it was).
    omit_when_none: ClassVar[tuple[str, ...]] = ()

    def stored(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for key in self.omit_when_none:
            if data.get(key) is None:
                data.pop(key, None)
        return data


def cli(*, flag: str | None = None, required: bool | None = None, metavar: str | None = None) -> dict[str, Any]:
    """``json_schema_extra`` for a Config field: how its generated CLI option differs."""
    return {"cli": {"flag": flag, "required": required, "metavar": metavar}}


C = TypeVar("C", bound=KindConfig)

#: One row of a kind's claim table: (claim name, check). A check raises ``Mismatch``.
ClaimCheck = tuple[str, Callable[[Any, Claims, str], None]]


def _error_text(exc: ValidationError) -> str:
    out = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "value_error":  # our validators' messages name the field
            out.append(str(error["msg"]).removeprefix("Value error, "))
        else:
            out.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(out)


class PublisherKind(Generic[C]):
    """One kind of Trusted Publisher."""

    #: The kind's one name (``assay admin publisher add NAME``, the rows' ``kind`` column).
    name: ClassVar[str]
    #: The PEP 740 ``publisher.kind`` its attestation identity serializes as (e.g. "GitHub").
    pep740_kind: ClassVar[str]
    #: The ``assay admin publisher add`` help text.
    help: ClassVar[str]
    Config: type[C]
    #: The OIDC issuer this kind's tokens come from when the admin does not say otherwise.
    default_issuer: ClassVar[str | None] = None
    #: Claims that must be present (besides the standard ones PyJWT checks).
    required: ClassVar[tuple[str, ...]] = ()
    #: The claim table ``check`` runs, in order (see ``ClaimCheck``).
    claim_checks: ClassVar[tuple[ClaimCheck, ...]] = ()
    #: Whether tokens of this kind carry a jti to be accepted once (Google ID tokens do not).
    requires_jti: ClassVar[bool] = True
    #: Claims recorded with each file uploaded under a token of this kind.
    stored: ClassVar[tuple[str, ...]] = ()
    #: The claims that say which workload a token is from (what ``claims_key`` reads): echoed
    #: back when no publisher is close enough to the token to report its reason for refusing.
    identifying_claims: ClassVar[tuple[str, ...]] = ()
    #: Whether publishers of this kind pin the token's ``repository_owner_id`` (PyPI does for
    #: GitHub): recorded at the first exchange unless the admin gave it, required afterwards.
    pins_owner_id: ClassVar[bool] = False

    # ---- configuration ----
    def prepare(self, raw: dict[str, Any], issuer: str) -> dict[str, Any]:
        """Fill in what the admin may leave out (derived from the issuer) before validation."""
        return raw

    def configure(self, raw: Mapping[str, Any], issuer: str) -> C:
        """Validate a configuration from the admin (``ConfigError`` says what is wrong)."""
        given = {k: v for k, v in raw.items() if v not in (None, "", (), {})}
        try:
            return self.Config.model_validate(self.prepare(given, issuer), context={"registering": True})
        except ValidationError as exc:
            raise ConfigError(_error_text(exc)) from None

    def load(self, stored: Mapping[str, Any]) -> C:
        """A stored configuration (a row's ``config`` JSON) as the typed ``Config``."""
        try:
            return self.Config.model_validate(dict(stored))
        except ValidationError as exc:
            raise ConfigError(f"stored {self.name} publisher configuration is invalid: {_error_text(exc)}") from None

    def with_owner_id(self, config: C, owner_id: str | None) -> C:
        """``config`` pinned to a recorded repository owner id (kinds that pin one)."""
        return config

    def owner_id(self, config: C) -> str | None:
        return None

    # ---- lookup ----
    def match_key(self, config: C) -> str:
        """An indexed value a token must reproduce (``claims_key``) to be a candidate."""
        return ""

    def claims_key(self, claims: Claims) -> str:
        return ""

    # ---- claims ----
    def check(self, config: C, claims: Claims, issuer: str) -> None:
        """Raise ``Mismatch`` unless ``claims`` satisfy ``config``: the required claims are
        present, then each row of ``claim_checks`` in order."""
        missing = [n for n in self.required if not text(claims, n)]
        if missing:
            raise Mismatch(f"the token lacks required claim(s): {', '.join(missing)}")
        for _claim, rule in self.claim_checks:
            rule(config, claims, issuer)

    def identifies(self, config: C, claims: Claims, issuer: str) -> bool:
        """Whether the token is from this publisher's workload (its identifying claim matches,
        e.g. the same repository), so that why it was refused may be told to the token's
        holder. A publisher that does not identify the token is another project's business:
        its expected values are never echoed to a stranger (issue 10, item 4)."""
        key = self.match_key(config)
        return bool(key) and key == self.claims_key(claims)

    def environment_matches(self, config: C, claims: Claims) -> bool:
        return False

    def stored_claim_names(self, config: C) -> tuple[str, ...]:
        return self.stored

    def stored_claims(self, config: C, claims: Claims, issuer: str) -> dict[str, Any]:
        """What is kept with every file uploaded under a token minted from ``claims``."""
        names = self.stored_claim_names(config)
        kept = {name: claims[name] for name in names if claims.get(name) not in (None, "")}
        return {"issuer": issuer, "kind": self.name, **kept}

    # ---- attestations ----
    def identity(self, config: C, issuer: str) -> Identity | None:
        """The PEP 740 signing identity this publisher's attestations must carry."""
        return None

    def describe(self, config: C) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(config.stored().items()) if v)

    # ---- command line ----
    def cli_options(self) -> list[click.Option]:
        """``assay admin publisher add <name>``'s own options, one per ``Config`` field:
        ``--field-name``, required when the field is (unless ``prepare`` derives it), the
        field's description as help; a ``dict`` field is a repeatable NAME=VALUE option."""
        options = []
        for name, info in self.Config.model_fields.items():
            flag, meta = _cli_meta(name, info)
            required = info.is_required() if meta.get("required") is None else bool(meta["required"])
            pairs = info.annotation is not None and getattr(info.annotation, "__origin__", None) is dict
            options.append(
                click.Option(
                    [flag, name],
                    required=required,
                    multiple=pairs,
                    metavar=meta.get("metavar") or ("NAME=VALUE" if pairs else None),
                    help=info.description,
                )
            )
        return options

    def config_from_cli(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The generated options' values as a raw configuration (NAME=VALUE pairs as a dict)."""
        raw: dict[str, Any] = {}
        for name, info in self.Config.model_fields.items():
            value = values.get(name)
            if getattr(info.annotation, "__origin__", None) is dict:
                pairs: dict[str, str] = {}
                for item in value or ():
                    key, sep, val = str(item).partition("=")
                    if not sep:
                        flag, _meta = _cli_meta(name, info)
                        raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=flag)
                    pairs[key.strip()] = val
                value = pairs
            raw[name] = value
        return raw


def _cli_meta(name: str, info: FieldInfo) -> tuple[str, dict[str, Any]]:
    """A Config field's option flag and its ``cli(...)`` metadata."""
    extra = info.json_schema_extra
    meta: dict[str, Any] = dict(extra.get("cli") or {}) if isinstance(extra, dict) else {}  # type: ignore[arg-type]
    return meta.get("flag") or "--" + name.replace("_", "-"), meta


# ---------------------------------------------------------------------------------- Identity


class Identity(Protocol):
    """Who signed an attestation: what a PEP 740 ``publisher`` block names, the Sigstore
    policy a certificate must satisfy to be it, and its ``.provenance.toml`` pin table."""

    kind: ClassVar[str]

    def to_publisher(self) -> dict[str, Any]: ...
    def policy(self) -> VerificationPolicy: ...
    def summary(self) -> str: ...
    def pin_table(self) -> dict[str, str]: ...
    def proposal(self) -> Identity: ...
    def certified_key(self) -> dict[str, Any]: ...


class IdentityBase:
    """Shared behaviour of the per-kind identity dataclasses: the publisher block and pin table
    are the dataclass's fields; ``required`` must be present in a block or pin, ``pin_optional``
    may be (others are block-only, e.g. an OIDC publisher's informative claims)."""

    kind: ClassVar[str]
    required: ClassVar[tuple[str, ...]]
    pin_optional: ClassVar[tuple[str, ...]] = ()
    #: Other spellings accepted in pins and PEP 751 attestation-identities.
    pin_aliases: ClassVar[Mapping[str, str]] = {}

    def to_publisher(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}  # type: ignore[arg-type]

    def policy(self) -> VerificationPolicy:
        """The Sigstore policy a signing certificate must satisfy to be this identity."""
        raise NotImplementedError

    def summary(self) -> str:
        """One line for people."""
        raise NotImplementedError

    #: Block fields a signing certificate does not carry (an environment, claim constraints).
    uncertified: ClassVar[tuple[str, ...]] = ("environment",)

    def certified_key(self) -> dict[str, Any]:
        """The publisher block without ``uncertified`` fields: what two identities must share
        to be the same signer as far as certificates can tell."""
        block = self.to_publisher()
        for name in self.uncertified:
            block.pop(name, None)
        return block

    def pin_defaults(self) -> Mapping[str, str]:
        """Pin fields whose value here is the default derived again on load (left out)."""
        return {}

    def pin_table(self) -> dict[str, str]:
        """The pin table (``kind`` first, then its fields; defaults left out)."""
        block = self.to_publisher()
        defaults = self.pin_defaults()
        table: dict[str, str] = {"kind": self.kind}
        for name in (*self.required, *self.pin_optional):
            value = block.get(name)
            if isinstance(value, str) and value and defaults.get(name) != value:
                table[name] = value
        return table

    def proposal(self) -> Identity:
        """The pin to propose for this identity read from a publisher block: its identifying
        fields only (a kind with informative fields overrides this)."""
        return self

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> Identity:
        """Parse a PEP 740 publisher block of this kind; unknown extra keys (like ``claims:
        null`` in old PyPI responses) are ignored, as pypi-attestations does."""
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in cls.required:
                values[f.name] = require_field(block, f.name, cls.kind)
            elif (value := optional_field(block, f.name)) is not None:
                values[f.name] = value
        identity: Identity = cls(**values)
        return identity


def require_field(block: Mapping[str, Any], key: str, kind: str) -> str:
    value = block.get(key)
    if not isinstance(value, str) or not value:
        raise IdentityError(f"{kind} publisher needs a non-empty string {key!r}")
    return value


def optional_field(block: Mapping[str, Any], key: str) -> str | None:
    value = block.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IdentityError(f"publisher field {key!r} must be a string")
    return value


@dataclass(frozen=True)
class RepositoryPin(IdentityBase):
    """Any workflow of one repository on a public forge (a ``.provenance.txt`` pin, which names
    no workflow; the forge's kind module defines its subclass). Checks the two Fulcio claims
    pypi-attestations' GitHub and GitLab policies check, minus the Build Config URI (the
    workflow file): issuer (.8) and Source Repository URI (.12)."""

    required: ClassVar[tuple[str, ...]] = ("repository",)
    issuer: ClassVar[str]
    #: The forge's URL, to which the Source Repository URI appends the repository path.
    forge: ClassVar[str]
    repository: str

    def policy(self) -> VerificationPolicy:
        from sigstore.verify import policy

        return policy.AllOf(
            [policy.OIDCIssuerV2(self.issuer), policy.OIDCSourceRepositoryURI(f"{self.forge}/{self.repository}")]
        )

    def summary(self) -> str:
        return f"{self.kind} {self.repository} (any workflow)"


def check_pattern(value: str, what: str) -> str:
    from assay.identities.patterns import PatternError, compile_pattern

    try:
        compile_pattern(value)
    except PatternError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return value


_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{what} must be a slug (letters, digits, '-', '_', '.'), got {value!r}")
    return value


__all__: Sequence[str] = [
    "C",
    "ClaimCheck",
    "Claims",
    "ConfigError",
    "Identity",
    "IdentityBase",
    "IdentityError",
    "KindConfig",
    "Mismatch",
    "PublisherKind",
    "cli",
    "https_url",
    "origin",
    "registering",
    "text",
]
