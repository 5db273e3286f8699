"""Indexes as first-class objects (issue 11, part 3; PEP 807's several registries on one host).

An index has a name, its own projects, files, tokens and publishers, its own settings (private
or public, the Trusted Publishing audience) and its own URLs: the default index at the site
root (``/simple/``, ``/legacy/``, ...), a named one under ``/<name>/`` (``/team/simple/``).
Only users (and the server's trusted OIDC issuers) are shared.
"""

from assay.indexes.names import IndexNameError, check_name
from assay.indexes.registry import DEFAULT, Indexes, IndexRef

__all__ = ["DEFAULT", "IndexNameError", "IndexRef", "Indexes", "check_name"]
