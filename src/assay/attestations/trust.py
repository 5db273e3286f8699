"""Sigstore trust roots: sigstore-python's embedded production and staging roots, or a file.

A ``TrustRoot`` holds the root's bytes and parses them with sigstore the first time a check
needs them. Importing sigstore and building its verifier takes about half a second, and a
client run whose every result is already known (``assay.verify.memo``) needs only the root's
digest; everything else (the index, ``assay attestations import``) calls ``load_trust_root``,
which parses at once so that a root sigstore refuses is reported where it is configured.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from assay.config import ConfigError

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

#: sigstore-python's embedded TUF roots, keyed by the names the settings use. Read from the
#: files shipped inside the sigstore package, not from its user cache (which an earlier online
#: run may have replaced), so "production" means the same bytes on every machine.
_EMBEDDED = {
    "production": "https://tuf-repo-cdn.sigstore.dev",
    "staging": "https://tuf-repo-cdn.sigstage.dev",
}


class TrustRootError(ConfigError):
    """A trust root that cannot be loaded: a setting (``sigstore_trust_root``) or an option
    (``--trust-root``) with an unusable value, so one of the ``ConfigError``s every command
    reports as a usage error (issue 11: one ConfigError)."""


@dataclass(frozen=True)
class TrustRoot:
    """A Sigstore trust root: its bytes, and (parsed on first use) the one verifier built from
    it, reused for every check."""

    name: str
    #: The file sigstore parses, and its contents as read when the root was named.
    path: Path
    text: str = field(repr=False)

    @cached_property
    def digest(self) -> str:
        """sha256 of the root's bytes: what a remembered check result is bound to."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @cached_property
    def trusted_root(self) -> TrustedRoot:
        """The root parsed by sigstore; raises ``TrustRootError`` if sigstore refuses it."""
        from sigstore.models import ClientTrustConfig, TrustedRoot

        try:
            if "trustedRoot" in json.loads(self.text):
                # A client trust config (sigstore's --trust-config format) wraps the root.
                return ClientTrustConfig.from_json(self.text).trusted_root
            return TrustedRoot.from_file(str(self.path))
        except Exception as exc:  # sigstore raises several types for a malformed root
            what = self.name if self.name in _EMBEDDED else f"file {self.name}"
            raise TrustRootError(f"trust root {what} is not a Sigstore trusted root: {exc}") from None

    @cached_property
    def verifier(self) -> Verifier:
        from sigstore.verify import Verifier

        return Verifier(trusted_root=self.trusted_root)


def check_trust_root(spec: str | Path) -> None:
    """What can be told of a trust root at once and cheaply, without reading sigstore's files:
    an embedded root's name, or a file holding a JSON object. Raises ``TrustRootError``."""
    if str(spec) not in _EMBEDDED:
        _read_file(Path(spec))


def _read_file(path: Path) -> str:
    try:
        raw_text = path.read_text()
        raw = json.loads(raw_text)
    except FileNotFoundError:
        raise TrustRootError(f"trust root file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise TrustRootError(f"trust root file {path} is not readable JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TrustRootError(f"trust root file {path} is not a Sigstore trusted root: not a JSON object")
    return raw_text


def read_trust_root(spec: str | Path) -> TrustRoot:
    """``production`` or ``staging`` (sigstore's embedded roots), or a path to a
    ``trusted_root.json`` (or a client trust config containing one), read and checked to be a
    JSON object; sigstore parses it on first use (``TrustRoot.trusted_root``)."""
    text = str(spec)
    if text in _EMBEDDED:
        import importlib.resources  # 20 ms to import; only needed here

        resource = importlib.resources.files("sigstore._store") / quote(_EMBEDDED[text], safe="") / "trusted_root.json"
        # The package ships it as a plain file (never zipped): as_file returns its own path.
        with importlib.resources.as_file(resource) as embedded:
            return TrustRoot(text, embedded, embedded.read_text())
    path = Path(text)
    return TrustRoot(text, path, _read_file(path))


def load_trust_root(spec: str | Path) -> TrustRoot:
    """``read_trust_root``, parsed by sigstore at once."""
    trust = read_trust_root(spec)
    _ = trust.trusted_root
    return trust
