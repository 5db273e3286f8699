"""The claim and subject pattern language (``patterns``). Publisher identities live with their
kinds in ``assay.publishers``."""
