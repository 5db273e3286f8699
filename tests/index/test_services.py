"""Issue 11: the composition root (``assay.app``) builds typed services; the upload path calls
an explicit attestation service; the render cache hears of committed project changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.accounts.auth import Principal
from assay.app import build_services
from assay.attestations.deferred import DeferredAttestationService
from assay.config import load_settings
from assay.index.negotiate import Format
from assay.index.pages import Rendered, index_key, project_key
from assay.storage.changes import project_changed
from assay.storage.models import Project
from assay.upload.form import UploadForm
from assay.upload.interfaces import NullAttestationService
from assay.upload.service import UploadRejected

WHO = Principal("t1", 1, "user", 1, "alice", None, None, None, False)


def test_the_null_attestation_service_refuses_attestations_and_passes_the_rest() -> None:
    service = NullAttestationService()
    plain = UploadForm(fields={"name": ["demo"]})
    assert service.check(None, plain, WHO) is None  # type: ignore[arg-type]
    attested = UploadForm(fields={"attestations": ["[]"]})
    with pytest.raises(UploadRejected, match="does not accept attestations") as caught:
        service.check(None, attested, WHO)  # type: ignore[arg-type]
    assert caught.value.status == 400


def test_build_services_wires_typed_services_and_frees_stale_pages(tmp_path: Path) -> None:
    svc = build_services(load_settings({"data_dir": str(tmp_path)}, environ={}))
    try:
        assert isinstance(svc.attestations, DeferredAttestationService)
        with pytest.raises(AttributeError):
            svc.extra  # type: ignore[attr-defined]  # noqa: B018 - the string-keyed dict is gone
        svc.db.migrate()
        with svc.db.write() as session:
            project = Project(name="demo", normalized_name="demo")
            session.add(project)
            session.flush()
            project_id = project.id
        page = Rendered(b"<html/>", '"x"')
        cache = svc.pages.cache
        cache.put(project_key(project_id, 1, Format.HTML, "http://h"), page)
        cache.put(project_key(project_id + 1, 1, Format.HTML, "http://h"), page)
        cache.put(index_key(1, 1, Format.HTML), page)
        cache.put(index_key(2, 1, Format.HTML), page)  # another index's project list
        with svc.db.write() as session:
            row = session.get(Project, project_id)
            assert row is not None
            project_changed(session, row, listing_changed=False)
        # This project's page is gone, the other project's and the list stay.
        assert cache.get(project_key(project_id, 1, Format.HTML, "http://h")) is None
        assert cache.get(project_key(project_id + 1, 1, Format.HTML, "http://h")) == page
        assert cache.get(index_key(1, 1, Format.HTML)) == page
        with svc.db.write() as session:
            row = session.get(Project, project_id)
            assert row is not None
            project_changed(session, row, listing_changed=True)
        assert cache.get(index_key(1, 1, Format.HTML)) is None
        assert cache.get(index_key(2, 1, Format.HTML)) == page  # not this index's: kept
        assert cache.size == 2 * len(page.body)
    finally:
        svc.close()
    # Closed: its listener is gone, so a later change elsewhere no longer reaches its cache.
    cache.put(index_key(1, 2, Format.HTML), page)
    other = build_services(load_settings({"data_dir": str(tmp_path)}, environ={}))
    try:
        with other.db.write() as session:
            row = session.get(Project, project_id)
            assert row is not None
            project_changed(session, row, listing_changed=True)
        assert cache.get(index_key(1, 2, Format.HTML)) == page
    finally:
        other.close()
