"""PEP 740 at upload: the ``attestations`` form field, verified against the uploader's publisher.

PyPI's rules (warehouse ``forklift/legacy.py`` and ``attestations/services.py``):

* attestations come with Trusted Publishing uploads; an API-token upload may carry them only
  when the index allows it (``token_upload_attestations``, off by default as on PyPI) and then
  they must match a publisher registered for the project;
* the field is a JSON array of one or two attestation objects, at most one per predicate type
  (PyPI publish v1, SLSA provenance v1);
* every attestation must verify (trust root, subject = this file, the publisher's identity); any
  failure rejects the whole upload with HTTP 400 and nothing of it is stored.

Issue 14, item 3 adds one rule PyPI does not have: a project may register maintainer identities
(``assay admin maintainer add``); an API-token upload to it may then carry attestations signed
by one of them (a release signed on a maintainer's machine), whatever
``token_upload_attestations`` says, since the project opted in. The provenance's publisher is
then ``{"kind": "Maintainer", ...}`` (``assay.publishers.maintainer``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Annotated, Any

import sqlalchemy as sa
from cryptography.x509 import Certificate
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from sigstore.errors import Error as SigstoreError

from assay import untrusted_json
from assay.accounts.auth import Principal
from assay.attestations import provenance as prov
from assay.attestations.trust import TrustRoot
from assay.attestations.verify import AttestationInvalid, parse_attestation, verify_attestation
from assay.publishers import Identity, identity_of
from assay.publishers.policies import signer_identity
from assay.storage.db import Database
from assay.storage.models import Project, Publisher, PublisherProject
from assay.untrusted_json import JSONTooDeep
from assay.upload.form import UploadForm
from assay.upload.service import PreparedUpload, Provenance, UploadRejected

PREFIX = "Invalid attestations supplied during upload: "
MAX_ATTESTATIONS = 2


def _reject(reason: str) -> UploadRejected:
    return UploadRejected(PREFIX + reason, 400, "bad-attestation")


class _Capture:
    """A policy that keeps the leaf certificate sigstore verified, so that the identity is
    judged on it afterwards (as ``assay.verify.provenance`` does): one cryptographic check per
    attestation, and a refusal that can name who signed."""

    def __init__(self) -> None:
        self.certificate: Certificate | None = None

    def verify(self, cert: Certificate) -> None:
        self.certificate = cert


def _satisfied(identity: Identity, cert: Certificate) -> bool:
    try:
        identity.policy().verify(cert)
    except SigstoreError:
        return False
    except ValueError:  # a malformed extension in a chain-valid certificate
        return False
    return True


def _signer(cert: Certificate | None) -> str:
    if cert is None:  # pragma: no cover - sigstore always applies the policy
        return "an unknown identity"
    issuer, emails, others = signer_identity(cert)
    return f"{', '.join(emails + others) or 'no subject'} (issuer {issuer or 'unknown'})"


#: PEP 740: a JSON array of one attestation object per predicate type (at most two kinds).
_FIELD: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(
    Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_ATTESTATIONS)],
    config=ConfigDict(strict=True),
)
#: pydantic's error type -> what the uploader is told.
_FIELD_ERRORS = {
    "list_type": "the attestations field must be a JSON array of attestation objects",
    "too_short": "the attestations array is empty",
    "too_long": f"at most {MAX_ATTESTATIONS} attestations are accepted per file (one per predicate type)",
    "dict_type": "every attestation must be a JSON object",
}


def parse_field(raw: str) -> list[dict[str, Any]]:
    try:
        docs = untrusted_json.loads(raw)  # depth-guarded before pydantic walks it
    except JSONTooDeep as exc:
        raise _reject(f"the attestations field is not an array of attestations ({exc})") from None
    except ValueError as exc:
        raise _reject(f"the attestations field is not JSON ({exc})") from None
    try:
        return _FIELD.validate_python(docs)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise _reject(_FIELD_ERRORS.get(error["type"], error["msg"])) from None


class AttestationCheck:
    """The attestation service of the upload path (``assay.upload.interfaces.AttestationService``):
    verifies an upload's attestations and returns the provenance to store with it."""

    def __init__(self, db: Database, trust: TrustRoot, *, token_uploads: bool) -> None:
        self.db = db
        self.trust = trust
        self.token_uploads = token_uploads

    def check(self, up: PreparedUpload, form: UploadForm, who: Principal) -> Provenance | None:
        raw = form.get("attestations")
        if raw is None:
            return None
        docs = parse_field(raw)
        if who.kind != "publisher":
            maintainers = self._maintainers(up, who)
            if maintainers:
                return self._check_maintainer_signed(docs, up, maintainers, who)
        candidates = self._identities(up, who)
        errors: list[str] = []
        for identity in candidates:
            try:
                predicates = self._verify_all(docs, up, identity)
            except AttestationInvalid as exc:
                errors.append(f"{identity.summary()}: {exc}")
                continue
            return Provenance(
                document=prov.provenance([prov.bundle(identity, docs)]),
                predicates=tuple(predicates),
                attested_by=identity.summary(),
            )
        raise _reject("; ".join(errors))

    def _maintainers(self, up: PreparedUpload, who: Principal) -> list[Identity]:
        """Issue 14, item 3: the project's registered maintainer identities (none: the upload
        is judged as before, by the publishers' rules)."""
        from assay.admin.maintainers import registered

        with self.db.read() as session:
            project_id = session.execute(
                sa.select(Project.id).where(Project.index_id == who.index_id, Project.normalized_name == up.normalized)
            ).scalar_one_or_none()
            return list(registered(session, project_id)) if project_id is not None else []

    def _check_maintainer_signed(
        self, docs: list[dict[str, Any]], up: PreparedUpload, maintainers: list[Identity], who: Principal
    ) -> Provenance:
        """A token upload to a project with maintainer identities: every attestation must verify
        (trust root, this file) and be signed by one and the same registered maintainer (or, where
        the index accepts token-upload attestations from publishers, one of the project's
        publishers). The refusal names the certificate's identity, so the maintainer sees which
        identity they signed with."""
        candidates = list(maintainers)
        if self.token_uploads:
            with contextlib.suppress(UploadRejected):  # no publisher with an identity: the maintainers alone
                candidates += self._identities(up, who)
        signers: list[Identity | None] = []
        predicates: list[str] = []
        for index, doc in enumerate(docs):
            capture = _Capture()
            try:
                predicate = verify_attestation(
                    parse_attestation(doc), filename=up.filename, sha256=up.sha256, policy=capture, trust=self.trust
                )
            except AttestationInvalid as exc:
                raise _reject(f"attestation {index + 1}: {exc}") from None
            if predicate in predicates:
                raise _reject(f"two attestations with predicate type {predicate}")
            predicates.append(predicate)
            cert = capture.certificate
            match = next((c for c in candidates if cert is not None and _satisfied(c, cert)), None)
            if match is None:
                registered = ", ".join(m.summary() for m in maintainers)
                raise UploadRejected(
                    PREFIX + f"attestation {index + 1} is signed by {_signer(cert)}, which is not a registered "
                    f"maintainer of {up.normalized!r} (registered: {registered})",
                    400,
                    "bad-attestation",
                )
            signers.append(match)
        first = signers[0]
        if first is None or any(s != first for s in signers):
            raise _reject("the attestations of one file must all be signed by the same identity")
        return Provenance(
            document=prov.provenance([prov.bundle(first, docs)]),
            predicates=tuple(predicates),
            attested_by=first.summary(),
        )

    def _identities(self, up: PreparedUpload, who: Principal) -> list[Identity]:
        with self.db.read() as session:
            if who.kind == "publisher":
                rows: Sequence[Publisher] = [p for p in [session.get(Publisher, who.publisher_id)] if p is not None]
            elif self.token_uploads:
                rows = list(
                    session.execute(
                        sa.select(Publisher)
                        .join(PublisherProject, PublisherProject.publisher_id == Publisher.id)
                        .join(Project, Project.id == PublisherProject.project_id)
                        .where(Project.normalized_name == up.normalized)
                        .order_by(Publisher.id)
                    ).scalars()
                )
                if not rows:
                    raise _reject(
                        f"the upload used an API token and project {up.normalized!r} has no trusted "
                        "publisher whose identity the attestations could match"
                    )
            else:
                # PyPI's wording.
                raise _reject("Attestations are only supported when using Trusted Publishing")
        identities: list[Identity] = []
        for row in rows:
            identity = identity_of(row.kind, row.config, row.issuer_url)
            if identity is not None:
                identities.append(identity)
        if not identities:
            raise _reject(
                "the trusted publisher has no attestation identity (a generic OIDC publisher needs --subject)"
            )
        return identities

    def _verify_all(self, docs: list[dict[str, Any]], up: PreparedUpload, identity: Identity) -> list[str]:
        policy = identity.policy()
        seen: list[str] = []
        for index, doc in enumerate(docs):
            attestation = parse_attestation(doc)
            try:
                predicate = verify_attestation(
                    attestation, filename=up.filename, sha256=up.sha256, policy=policy, trust=self.trust
                )
            except AttestationInvalid as exc:
                raise AttestationInvalid(f"attestation {index + 1}: {exc}") from None
            if predicate in seen:
                raise AttestationInvalid(f"two attestations with predicate type {predicate}")
            seen.append(predicate)
        return seen
