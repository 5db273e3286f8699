"""The mirror engine (``assay.mirror``) behind the read path's ``index.mirrors.Mirrors`` port.

An index's upstreams are itself when it is a mirror, else the mirror indexes it is layered
over (``bases``), in order; each mirror index has its own policy (``assay admin policy set
--index NAME``), which is the one applied to what comes through it.
"""

from __future__ import annotations

import anyio

from assay.index.mirrors import MIRROR_FILES, MirroredFile, MirroredPage, MirrorRefusal
from assay.indexes import Indexes, IndexRef
from assay.mirror.policy import Policy
from assay.mirror.report import get_policy
from assay.mirror.service import MirrorService, Refused, UpstreamUnavailable
from assay.storage.db import Database


class EngineMirrors:
    def __init__(self, service: MirrorService, db: Database, indexes: Indexes) -> None:
        self.service = service
        self.db = db
        self.indexes = indexes

    def _upstreams(self, index: IndexRef) -> list[IndexRef]:
        if index.is_mirror:
            return [index]
        found = (self.indexes.by_name(name) for name in index.bases)
        return [base for base in found if base is not None and base.is_mirror]

    def serves(self, index: IndexRef) -> bool:
        return index.is_mirror or bool(index.bases)

    async def _policy(self, base: IndexRef) -> Policy:
        return await anyio.to_thread.run_sync(get_policy, self.db, base.id)

    async def page(self, index: IndexRef, name: str, base_url: str) -> MirroredPage | MirrorRefusal | None:
        trouble: str | None = None
        for base in self._upstreams(index):
            assert base.mirror_url is not None
            try:
                got = await self.service.project_page(
                    base.id, base.mirror_url, await self._policy(base), name, base_url=base_url
                )
            except UpstreamUnavailable as exc:
                trouble = str(exc)
                continue  # the next base may have it
            if got.page is not None:
                return MirroredPage(got.page, got.warnings)
        return MirrorRefusal(502, trouble) if trouble else None

    async def open_file(self, index: IndexRef, key: str) -> MirroredFile | MirrorRefusal:
        # ``mirror/<mirror index id>/<sha[:2]>/<sha[2:4]>/<rest>/<filename>`` (assay.mirror.files)
        parts = key.removeprefix(MIRROR_FILES).split("/")
        base = next((b for b in self._upstreams(index) if parts[0] == str(b.id)), None)
        if base is None or len(parts) < 2 or base.mirror_url is None:
            return MirrorRefusal(404, "No such file.")
        got = await self.service.open_file(base.id, base.mirror_url, await self._policy(base), parts[-1])
        if isinstance(got, Refused):
            return MirrorRefusal(got.status, got.reason)
        return MirroredFile(got.filename, got.blob_key, got.sha256, got.warnings)

    async def provenance(self, index: IndexRef, filename: str) -> bytes | MirrorRefusal:
        refusal = MirrorRefusal(404, f"No provenance available for {filename}")
        for base in self._upstreams(index):
            assert base.mirror_url is not None
            got = await self.service.provenance(base.id, base.mirror_url, await self._policy(base), filename)
            if not isinstance(got, Refused):
                return got
            refusal = MirrorRefusal(got.status, got.reason)
        return refusal
