"""Sigstore verification policies for self-hosted CI, where pypi-attestations has none.

pypi-attestations' GitHub and GitLab policies hard-code github.com and gitlab.com. A GitHub
Enterprise Server, a self-managed GitLab or a Forgejo instance signing through an
organisation's own Sigstore puts the same Fulcio extensions in its certificates, with its own
host and issuer; these policies make the same checks with those values:

1. the OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8) is the publisher's issuer;
2. the Source Repository URI (.12) is the publisher's repository on its instance;
3. the Build Config URI (.18) is ``<repository URI><config path>@<ref or digest>``, where the
   ref (.14) and digest (.13) come from the certificate itself: a publisher names a workflow
   file, not the commit it runs on.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509 import Certificate
from pyasn1.codec.der.decoder import decode as der_decode
from pyasn1.type.char import UTF8String
from sigstore.errors import VerificationError
from sigstore.verify import policy

from assay.identities.patterns import PatternError, compile_pattern

#: Fulcio's OID arc for CI claims.
_FULCIO = "1.3.6.1.4.1.57264.1."
ISSUER_V1 = x509.ObjectIdentifier(_FULCIO + "1")
ISSUER_V2 = x509.ObjectIdentifier(_FULCIO + "8")
SOURCE_REPOSITORY_URI = x509.ObjectIdentifier(_FULCIO + "12")
SOURCE_REPOSITORY_DIGEST = x509.ObjectIdentifier(_FULCIO + "13")
SOURCE_REPOSITORY_REF = x509.ObjectIdentifier(_FULCIO + "14")
BUILD_CONFIG_URI = x509.ObjectIdentifier(_FULCIO + "18")


def extension_text(cert: Certificate, oid: x509.ObjectIdentifier) -> str | None:
    """A Fulcio extension's value as text (v2 extensions are DER UTF8String; .1 is raw)."""
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    raw = ext.value.public_bytes()
    if oid == ISSUER_V1:
        return raw.decode("utf-8", "replace")
    value, _rest = der_decode(raw, asn1Spec=UTF8String())
    return str(value)


def san_values(cert: Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    values += [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
    return values


class BuildConfigPolicy:
    """Repository + workflow file on any instance (see the module docstring)."""

    def __init__(self, *, issuer: str, repository_uri: str, config_paths: list[str]) -> None:
        self.issuer = issuer
        self.repository_uri = repository_uri
        self.config_paths = config_paths
        self._base = policy.AllOf([policy.OIDCIssuerV2(issuer), policy.OIDCSourceRepositoryURI(repository_uri)])

    def verify(self, cert: Certificate) -> None:
        self._base.verify(cert)
        build_config = extension_text(cert, BUILD_CONFIG_URI)
        if build_config is None:
            raise VerificationError("certificate has no Build Config URI extension")
        suffixes = [
            s
            for s in (extension_text(cert, SOURCE_REPOSITORY_DIGEST), extension_text(cert, SOURCE_REPOSITORY_REF))
            if s
        ]
        if not suffixes:
            raise VerificationError("certificate must contain a Source Repository Digest or Source Repository Ref")
        for path in self.config_paths:
            for suffix in suffixes:
                if build_config == f"{self.repository_uri}{path}@{suffix}":
                    return
        raise VerificationError(
            f"certificate's Build Config URI ({build_config}) is not one of the publisher's "
            f"workflows ({', '.join(self.repository_uri + p for p in self.config_paths)})"
        )


class IssuerAndSubjectPolicy:
    """A generic OIDC publisher: the certificate's issuer, and its SAN matching a subject
    pattern (``assay.identities.patterns``: exact, or ``*`` within a segment and ``**`` across,
    after a literal namespace). A pattern outside the language matches no certificate."""

    def __init__(self, *, issuer: str, subject: str) -> None:
        self.issuer = issuer
        self.subject = subject

    def verify(self, cert: Certificate) -> None:
        issuer = extension_text(cert, ISSUER_V2) or extension_text(cert, ISSUER_V1)
        # One trailing "/" does not make another issuer (as for tokens: publishing/oidc_token.py):
        # Fulcio copies the token's iss, which may keep it, while assay stores issuers without.
        if issuer is None or issuer.removesuffix("/") != self.issuer.removesuffix("/"):
            raise VerificationError(f"certificate's OIDC issuer is {issuer!r}, expected {self.issuer!r}")
        try:
            pattern = compile_pattern(self.subject)
        except PatternError as exc:
            raise VerificationError(f"the publisher's subject pattern is not accepted: {exc}") from None
        sans = san_values(cert)
        for san in sans:
            if pattern.matches(san):
                return
        raise VerificationError(f"certificate's subject ({', '.join(sans) or 'none'}) does not match {self.subject!r}")


class MaintainerPolicy:
    """A maintainer's own identity (``assay.publishers.maintainer``): the certificate's OIDC
    issuer, and its SAN equal to the registered e-mail (an RFC 822 name, compared without case,
    as e-mail addresses are by OIDC providers) or subject (any SAN, exactly)."""

    def __init__(self, *, issuer: str, email: str | None, subject: str | None) -> None:
        self.issuer = issuer
        self.email = email
        self.subject = subject

    def verify(self, cert: Certificate) -> None:
        issuer = extension_text(cert, ISSUER_V2) or extension_text(cert, ISSUER_V1)
        if issuer is None or issuer.removesuffix("/") != self.issuer.removesuffix("/"):
            raise VerificationError(f"certificate's OIDC issuer is {issuer!r}, expected {self.issuer!r}")
        if self.email is not None:
            emails = email_sans(cert)
            if self.email.lower() not in (e.lower() for e in emails):
                raise VerificationError(f"certificate's e-mail ({', '.join(emails) or 'none'}) is not {self.email!r}")
            return
        sans = san_values(cert)
        if self.subject not in sans:
            raise VerificationError(f"certificate's subject ({', '.join(sans) or 'none'}) is not {self.subject!r}")


def email_sans(cert: Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.RFC822Name)]


def signer_identity(cert: Certificate) -> tuple[str | None, list[str], list[str]]:
    """What a signing certificate says of its signer: (OIDC issuer, e-mail SANs, other SANs)."""
    issuer = extension_text(cert, ISSUER_V2) or extension_text(cert, ISSUER_V1)
    emails = email_sans(cert)
    others = [s for s in san_values(cert) if s not in emails]
    return issuer, emails, others
