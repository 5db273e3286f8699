"""The attestation service of the upload path, with sigstore loaded by the first upload that carries attestations.

sigstore, pypi-attestations and what they import (TUF, pydantic models, requests) cost a server
worker about 22 MB of memory and a third of a second of start-up. Most of what an index serves is
reads, and a worker that is never sent an attestation never needs them; so the worker imports
them, and loads the trust root, the first time an upload has an ``attestations`` field (in the
thread pool, where the upload route calls the attestation service), once, under a lock.

A misconfigured trust root still stops ``assay serve`` at start: ``Settings.validate`` checks
what it can without sigstore (an embedded root's name, or a file holding a JSON object). What
only sigstore can judge (the file is JSON but not a trusted root) is found by the first attested
upload, which is answered 503 with the reason (and the reason logged); the next one tries again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from assay.accounts.auth import Principal
from assay.storage.db import Database
from assay.upload.form import UploadForm
from assay.upload.service import PreparedUpload, Provenance, UploadRejected

if TYPE_CHECKING:
    from assay.attestations.upload import AttestationCheck

log = logging.getLogger("assay.attestations")


class DeferredAttestationService:
    """An ``assay.upload.interfaces.AttestationService`` that builds ``AttestationCheck`` (and
    imports sigstore) when the first upload with attestations needs it."""

    def __init__(self, db: Database, trust_root: str, *, token_uploads: bool) -> None:
        self.db = db
        self.trust_root = trust_root
        self.token_uploads = token_uploads
        self._check: AttestationCheck | None = None
        self._lock = threading.Lock()

    def check(self, up: PreparedUpload, form: UploadForm, who: Principal) -> Provenance | None:
        if form.get("attestations") is None:
            return None
        return self._loaded().check(up, form, who)

    def _loaded(self) -> AttestationCheck:
        with self._lock:
            if self._check is None:
                from assay.attestations.trust import TrustRootError, load_trust_root
                from assay.attestations.upload import AttestationCheck

                try:
                    trust = load_trust_root(self.trust_root)
                except TrustRootError as exc:
                    log.error("cannot verify attestations: %s", exc)
                    raise UploadRejected(
                        f"This index cannot verify attestations now: its Sigstore trust root is not usable ({exc}).",
                        503,
                    ) from None
                self._check = AttestationCheck(self.db, trust, token_uploads=self.token_uploads)
            return self._check
