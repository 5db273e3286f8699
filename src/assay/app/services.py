"""Every service a request handler may use, built once per worker from the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from assay.app.mirrors import EngineMirrors
from assay.attestations.deferred import DeferredAttestationService
from assay.config import Settings
from assay.index.cdn import purger_for
from assay.index.filesend import FileCache
from assay.index.mirrors import Mirrors
from assay.index.pages import SimplePages
from assay.index.serials import Serials, serials_for
from assay.index.services import IndexServices
from assay.indexes import DEFAULT, Indexes
from assay.log.routes import LogService, LogServices
from assay.mirror.service import MirrorService
from assay.publishing.interfaces import PublishingServices
from assay.publishing.service import TrustedPublishing
from assay.rebuilds.routes import RebuildServices
from assay.stages.services import StageServices
from assay.storage.blobs import BlobStore
from assay.storage.changes import on_project_changed
from assay.storage.db import Database
from assay.storage.stores import blob_store
from assay.ui.cache import UIPages
from assay.ui.services import UIServices
from assay.upload.interfaces import AttestationService, UploadServices
from assay.upload.service import Uploader
from assay.web import urls


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    #: Which indexes exist (issue 11, part 3): what every route resolves its URL's index with.
    indexes: Indexes
    blobs: BlobStore
    pages: SimplePages
    serials: Serials
    #: Issue 17: what is known of each served file, and the bytes of small ones.
    files: FileCache
    uploader: Uploader
    trusted_publishing: TrustedPublishing
    #: PEP 740 at upload; ``upload.interfaces.NullAttestationService`` refuses attestations.
    attestations: AttestationService
    #: The transparency log's signer and checkpoints (issue 13).
    log: LogService
    #: Upstream mirrors (issue 12): the engine, and the read path's port over it.
    mirror_engine: MirrorService
    mirrors: Mirrors
    #: The web pages' cache (issue 15), invalidated by the same project-change hook.
    ui_pages: UIPages
    #: Undo what ``build_services`` registered (the project-change listener): ``close``.
    _unregister: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    def base_url(self, request: Request) -> str:
        return urls.base_url(self.settings, request)

    def close(self) -> None:
        for undo in self._unregister:
            undo()
        self._unregister.clear()
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    db = Database(
        settings.resolved_database_url,
        statement_timeout=settings.db_statement_timeout,
        pool_timeout=settings.db_pool_timeout,
    )
    blobs = blob_store(settings)
    indexes = Indexes(db)
    # One per worker: its HTTP client keeps connections to the upstreams.
    engine = MirrorService(
        db,
        blobs,
        trust_root=settings.sigstore_trust_root,
        page_ttl=settings.mirror_page_ttl,
        max_file_size=settings.mirror_max_file_size,
    )
    pages = SimplePages()
    serials = serials_for(db, settings.serial_poll_seconds)
    svc = Services(
        settings=settings,
        db=db,
        indexes=indexes,
        blobs=blobs,
        pages=pages,
        serials=serials,
        files=FileCache(settings.file_cache_bytes),
        uploader=Uploader(db, blobs, stage_ttl=settings.stage_ttl),
        trusted_publishing=TrustedPublishing(db, settings),
        # One trust root, and so one sigstore verifier, per worker, loaded by the first upload
        # with attestations (see assay.attestations.deferred). PyPI: the production root;
        # "staging", or an organisation's own trusted_root.json, by setting.
        attestations=DeferredAttestationService(
            db, settings.sigstore_trust_root, token_uploads=settings.token_upload_attestations
        ),
        log=LogService(settings, db),
        ui_pages=UIPages(),
        mirror_engine=engine,
        mirrors=EngineMirrors(engine, db, indexes, serials),
    )
    # This worker's pages of a changed project are stale from its commit on (never served:
    # the serial they are keyed by is gone); free them at once rather than when the LRU ages
    # them out. Other workers' stale pages age out the same way, unserved.
    svc._unregister.append(on_project_changed(pages.forget))
    # Issue 17: this process's own changes drop its kept serials before the writer's response
    # is sent (other servers hear of them by NOTIFY, or within serial_poll_seconds).
    svc._unregister.append(on_project_changed(svc.serials.answers.forget))
    svc._unregister.append(svc.serials.close)
    # Issue 16: a CDN in front drops its copies of a changed project's pages (in the committing
    # process, after the commit; a background thread sends, so no request waits for the CDN).
    if (purger := purger_for(settings, lambda index_id: (indexes.by_id(index_id) or DEFAULT).name)) is not None:
        svc._unregister.append(on_project_changed(purger.on_change))
        svc._unregister.append(purger.close)

    svc._unregister.append(on_project_changed(svc.ui_pages.forget))
    return svc


def _provides(
    svc: Services,
) -> tuple[IndexServices, UploadServices, PublishingServices, LogServices, UIServices, StageServices, RebuildServices]:
    """Never called: mypy checks here that ``Services`` provides every interface a capability's
    routes read from the app state (``index_services``, ``upload_services``, ...)."""
    return svc, svc, svc, svc, svc, svc, svc
