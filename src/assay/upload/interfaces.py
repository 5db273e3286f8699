"""What the upload path needs from the application, and the attestation port it calls.

The upload core knows that an upload may carry PEP 740 attestations and that something must
judge them before the commit; it does not know how (sigstore, trust roots, publishers: that is
``assay.attestations``, which depends on this package, not the other way round). The
application gives it an ``AttestationService``: ``check`` returns the verified ``Provenance``
to store with the file, or None when the upload has no attestations, or refuses the upload by
raising ``UploadRejected`` (Warehouse's ``IIntegrityService`` / ``NullIntegrityService``).
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from assay.accounts.auth import Principal
from assay.config import Settings
from assay.indexes import Indexes
from assay.storage.blobs import BlobStore
from assay.storage.db import Database
from assay.upload.form import UploadForm
from assay.upload.service import PreparedUpload, Provenance, Uploader, UploadRejected


class AttestationService(Protocol):
    def check(self, prepared: PreparedUpload, form: UploadForm, who: Principal) -> Provenance | None:
        """The provenance the upload's attestations prove, None without attestations; raises
        ``UploadRejected`` (nothing of the upload is stored) when they do not verify."""
        ...


class NullAttestationService:
    """For an index built without the attestations capability: an upload that carries
    attestations is refused (storing the file without them would tell the publisher its
    provenance was recorded when it was not); any other upload passes."""

    def check(self, prepared: PreparedUpload, form: UploadForm, who: Principal) -> Provenance | None:
        if form.get("attestations") is not None:
            raise UploadRejected("This index does not accept attestations (PEP 740): upload without them.", 400)
        return None


class UploadServices(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def indexes(self) -> Indexes: ...
    @property
    def blobs(self) -> BlobStore: ...
    @property
    def uploader(self) -> Uploader: ...
    @property
    def attestations(self) -> AttestationService: ...
    def base_url(self, request: Request) -> str: ...


def upload_services(request: Request) -> UploadServices:
    # Checked statically in ``assay.app.services``.
    svc: UploadServices = request.app.state.services
    return svc
