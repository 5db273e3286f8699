"""Administration: what ``assay admin`` does, as plain functions over the database.

Every function takes an ``actor`` and records an audit event in the same transaction as its
change. Errors raise ``AdminError`` with a message meant for the operator.
"""


class AdminError(ValueError):
    """An admin action cannot be done; the message says why."""
