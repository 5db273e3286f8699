"""What the read path asks of upstream mirrors (issue 12): the port its routes call.

A mirror index (``assay admin index create NAME --mirror URL``) serves, for every project it
does not host, the upstream's page through the index's policy; a hosted index layered over
mirrors (``--bases``) does the same through each base in order. The engine (fetching,
checking, the policy) is ``assay.mirror``, which sits above this package (it verifies PEP 740
with ``assay.verify``'s code); the composition root (``assay.app.mirrors``) gives the routes an
object with this shape, as upload is given its ``AttestationService``.

Shadowing is the route's rule, not the port's: a project the index hosts (or reserves, an
empty project) is served from the index and never asked of a mirror, so a name can never come
from upstream once it is local (devpi's ``mirror_whitelist``, inverted to safe by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from assay.index.model import ProjectLink, ProjectPage
from assay.indexes import IndexRef

#: Where mirrored files are served: ``/files/mirror/<mirror index id>/<key>`` (assay.mirror.files).
MIRROR_FILES = "mirror/"


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity: routes memoise its rendering
class MirroredPage:
    #: Visible files only; their URLs are relative, as hosted pages' are.
    page: ProjectPage
    #: Non-empty: served from what is kept while upstream is unreachable (a Warning header).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class MirroredNames:
    """The names an index lists from its upstreams in its ``/simple/`` (PEP 503 / 691 root)."""

    #: Upstreams' projects minus those the policy's allow / deny lists keep out, one per
    #: normalized name (the first upstream's spelling), in no particular order.
    projects: tuple[ProjectLink, ...]
    #: Non-empty: an upstream's list is served as kept (or missing) while it is unreachable.
    warnings: tuple[str, ...] = ()
    #: Names the content: two answers with equal keys list the same names (routes key the
    #: rendered list by it).
    key: tuple[object, ...] = ()


@dataclass(frozen=True)
class MirroredFile:
    filename: str
    blob_key: str
    sha256: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class MirrorRefusal:
    """Answer ``status`` with ``reason``: 404 hidden by the policy (the reason says why, so
    installers resolve around it and people can tell), 502/503 upstream trouble."""

    status: int
    reason: str


class Mirrors(Protocol):
    def serves(self, index: IndexRef) -> bool:
        """Whether ``index`` has upstreams (is a mirror, or layered over mirrors)."""
        ...

    async def page(self, index: IndexRef, name: str, base_url: str) -> MirroredPage | MirrorRefusal | None:
        """The first upstream's page for ``name`` (None: no upstream has it)."""
        ...

    async def names(self, index: IndexRef) -> MirroredNames:
        """The projects ``index``'s upstreams list, through each one's policy."""
        ...

    async def open_file(self, index: IndexRef, key: str) -> MirroredFile | MirrorRefusal:
        """The file (or PEP 658 ``.metadata``) behind ``/files/<key>``, fetched and checked on
        its first download."""
        ...

    async def provenance(self, index: IndexRef, filename: str) -> bytes | MirrorRefusal:
        """Upstream's PEP 740 provenance of a visible file, unchanged."""
        ...


class NoMirrors:
    """An application without the mirror capability: no index has upstreams."""

    def serves(self, index: IndexRef) -> bool:
        return False

    async def page(self, index: IndexRef, name: str, base_url: str) -> MirroredPage | MirrorRefusal | None:
        return None

    async def names(self, index: IndexRef) -> MirroredNames:
        return MirroredNames(())

    async def open_file(self, index: IndexRef, key: str) -> MirroredFile | MirrorRefusal:
        return MirrorRefusal(404, "No such file.")

    async def provenance(self, index: IndexRef, filename: str) -> bytes | MirrorRefusal:
        return MirrorRefusal(404, f"No provenance available for {filename}")
