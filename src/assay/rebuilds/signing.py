"""Signing a rebuild statement with Sigstore (the ``sigstore`` library): an ephemeral key, a
Fulcio certificate for the rebuilder's OIDC identity token, the DSSE envelope logged in Rekor;
returned as a PEP 740 attestation object (pypi-attestations' ``Attestation.from_bundle``), the
form the index's ``/rebuilds`` endpoint takes.

``Signer`` is what ``client.rebuild`` needs: anything that turns (subject, predicate type,
predicate) into an attestation object. ``SigstoreSigner`` is the real one; the tests sign with
their local Sigstore authority through the same interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class SigningFailed(Exception):
    """The statement could not be signed; the message says why."""


class Signer(Protocol):
    def sign(self, filename: str, sha256: str, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]: ...


class SigstoreSigner:
    """Sign with a Sigstore instance: ``production`` or ``staging`` (sigstore's embedded client
    trust configurations) or a client trust config file (an organisation's own Sigstore: its
    Fulcio, Rekor and trusted root)."""

    def __init__(self, identity_token: str, trust_config: str = "production") -> None:
        if not identity_token:
            raise SigningFailed("an OIDC identity token is needed: --identity-token or ASSAY_IDENTITY_TOKEN")
        self._token = identity_token
        self._trust_config = trust_config

    def sign(self, filename: str, sha256: str, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
        from pypi_attestations import Attestation
        from sigstore.dsse import StatementBuilder, Subject
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityError, IdentityToken
        from sigstore.sign import SigningContext

        try:
            # The token first: a malformed one is refused before the trust config is fetched
            # (production and staging update theirs over TUF).
            token = IdentityToken(self._token)
            if self._trust_config == "production":
                config = ClientTrustConfig.production()
            elif self._trust_config == "staging":
                config = ClientTrustConfig.staging()
            else:
                config = ClientTrustConfig.from_json(Path(self._trust_config).read_text())
            statement = (
                StatementBuilder()
                .subjects([Subject(name=filename, digest={"sha256": sha256})])
                .predicate_type(predicate_type)
                .predicate(predicate)
                .build()
            )
            with SigningContext.from_trust_config(config).signer(token, cache=False) as signer:
                bundle = signer.sign_dsse(statement)
            doc: dict[str, Any] = Attestation.from_bundle(bundle).model_dump(mode="json")
            return doc
        except (IdentityError, SigstoreError, OSError, ValueError) as exc:
            raise SigningFailed(f"signing with Sigstore ({self._trust_config}) failed: {exc}") from None
