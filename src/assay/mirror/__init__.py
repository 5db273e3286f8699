"""Upstream mirrors with a provenance policy (issue 12; docs/mirrors.md).

An index with a ``mirror`` URL serves the projects it does not host from an upstream PEP 691 /
503 simple index, through the organisation's policy:

``upstream``   fetching and parsing upstream project pages; revalidation, TTL, cache in the DB
``files``      first download: stream, check sha256, publish to the blob store, keep the row
``durations``  "7d", "12h" and ISO 8601 durations
``policy``     the policy file (TOML) as a typed model
``attested``   PEP 740 provenance: fetch, verify (cached), TOFU pins
``decide``     which files are visible, and why the others are not
``report``     what was hidden and why (``assay admin policy report``)
``service``    ``MirrorService``: the facade the index's read routes call
"""
