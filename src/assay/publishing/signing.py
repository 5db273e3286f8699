"""Signing distributions as a maintainer (issue 14, item 3): PEP 740 attestations made on the
maintainer's own machine with the ``sigstore`` library, so a release that does not come out of
CI (Django's, built and checked by a fellow) has provenance too.

The identity is an OIDC identity token: given (``--identity-token``, or ``SIGSTORE_ID_TOKEN``
as the sigstore CLI reads it), or obtained by sigstore's interactive browser flow
(``--oidc-login``: sigstore opens the signing config's OIDC provider and listens on a loopback
port for the redirect). Fulcio certifies an ephemeral key for the token's identity, the
attestation (PyPI publish v1 statement, through pypi-attestations) is signed with it and
logged in Rekor, and the result is written beside the file as ``<file>.publish.attestation``,
where ``assay publish`` (and uv, twine, the PyPA action) pick attestations up.

Which Sigstore: ``--sigstore-trust-config FILE``, a sigstore client trust config (the trusted
root and the signing config naming Fulcio and Rekor; an organisation's own Sigstore); without
it, sigstore's public-good instance. The index must trust the same root
(``sigstore_trust_root``), and the project must have the signer registered as a maintainer
(``assay admin maintainer add``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pypi_attestations import Attestation
    from sigstore.models import ClientTrustConfig


class SigningError(Exception):
    """Signing could not be done; the message says why and what to do."""


def trust_config(path: Path | None) -> ClientTrustConfig:
    from sigstore.models import ClientTrustConfig

    if path is None:
        return ClientTrustConfig.production()
    try:
        return ClientTrustConfig.from_json(path.read_text())
    except OSError as exc:
        raise SigningError(f"cannot read the Sigstore trust config {path}: {exc}") from None
    except Exception as exc:  # sigstore raises several types for a malformed config
        raise SigningError(f"{path} is not a Sigstore client trust config: {exc}") from None


def interactive_token(config: ClientTrustConfig) -> str:
    """sigstore's browser flow against the signing config's OIDC provider (needs a browser and
    that provider: run on the maintainer's machine)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import Issuer

    try:
        issuer = Issuer(config.signing_config.get_oidc_url())
        return str(issuer.identity_token(force_oob=False))
    except SigstoreError as exc:
        raise SigningError(f"the OIDC login failed: {exc}") from None


def _signer(attestation: Attestation) -> str:
    """Who the certificate Fulcio issued names: what the index will compare with the project's
    registered maintainers."""
    from cryptography import x509

    from assay.publishers.policies import signer_identity

    issuer, emails, others = signer_identity(
        x509.load_der_x509_certificate(attestation.verification_material.certificate)
    )
    return f"{', '.join(emails + others) or 'no subject'} (issuer {issuer or 'unknown'})"


def attestation_path(dist: Path) -> Path:
    return dist.with_name(dist.name + ".publish.attestation")


def sign(
    dists: Sequence[Path],
    identity_token: str,
    config: ClientTrustConfig,
    *,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Sign each distribution (one certificate for all, sigstore's cached signer); returns the
    attestation files written."""
    from pypi_attestations import Attestation, AttestationError, Distribution
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import IdentityError, IdentityToken
    from sigstore.sign import SigningContext

    try:
        token = IdentityToken(identity_token)
    except IdentityError as exc:
        raise SigningError(
            f"the identity token is not usable for Sigstore: {exc} (it must be an OIDC ID token "
            "with audience 'sigstore', not expired)"
        ) from None
    say(f"signing with an identity token of {token.issuer}")
    written: list[Path] = []
    try:
        context = SigningContext.from_trust_config(config)
        with context.signer(token, cache=True) as signer:
            for dist in dists:
                attestation = Attestation.sign(signer, Distribution.from_file(dist))
                out = attestation_path(dist)
                out.write_text(attestation.model_dump_json())
                written.append(out)
                say(f"signed {dist.name} as {_signer(attestation)}: {out.name}")
    except (AttestationError, SigstoreError) as exc:
        raise SigningError(f"signing failed: {exc}") from None
    except Exception as exc:  # network errors from Fulcio/Rekor surface as requests' types
        raise SigningError(f"signing failed ({type(exc).__name__}): {exc}") from None
    return written
