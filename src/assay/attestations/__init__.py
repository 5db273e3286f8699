"""PEP 740 attestations: verification, provenance objects, the Integrity API."""
