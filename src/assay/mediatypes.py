"""Media types the index serves and the verifying client asks for, in one place.

Plain strings with no imports, so the server (Starlette routes) and the client (``assay
verify``, which never loads Starlette) name the same types from the same constants.
"""

from __future__ import annotations

#: PEP 691: the simple API, version 1, as JSON and as HTML.
SIMPLE_JSON_V1 = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML_V1 = "application/vnd.pypi.simple.v1+html"
#: PEP 691: "latest" names whatever version the server prefers (answered with the concrete one).
SIMPLE_JSON_LATEST = "application/vnd.pypi.simple.latest+json"
SIMPLE_HTML_LATEST = "application/vnd.pypi.simple.latest+html"
#: PEP 503 pages; PEP 691 keeps it as an alias of the v1 HTML type for pre-691 clients.
TEXT_HTML = "text/html"

#: PEP 740 Integrity API: a file's provenance object.
INTEGRITY_JSON_V1 = "application/vnd.pypi.integrity.v1+json"
#: PEP 807 Trusted Publishing discovery.
PYTP_JSON_V1 = "application/vnd.pypi.pytp.v1+json"
#: RFC 9457 problem details (PEP 807 errors).
PROBLEM_JSON = "application/problem+json"
#: RFC 8259; PyPI answers its JSON API, and takes it in Accept, as this.
JSON = "application/json"

#: What ``assay verify`` sends for a provenance object: the PEP 740 type, plain JSON second
#: (a static mirror may serve the file as application/json).
INTEGRITY_ACCEPT = f"{INTEGRITY_JSON_V1}, {JSON};q=0.9"
