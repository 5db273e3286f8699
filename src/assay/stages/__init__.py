"""Staged releases and their approval (issue 14; docs/releases.md): the stages an upload to a
staged project lands in (written by ``assay.upload.staging``), their preview index
(``/stage/<id>/simple/``), the maintainers' API (``/_/releases/``), approval (an owner, TOTP,
four eyes; atomic) and the removal of rejected and expired stages."""
