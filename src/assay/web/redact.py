"""No secrets in logs (issue 6): a logging filter that masks credentials in every record.

Nothing in assay logs a credential on purpose, but log lines carry what clients send: uvicorn's
access log writes each request line with its query string, an exception's message or traceback
may quote input, and a client may put a token where it does not belong (``?token=...``, a JWT in
a URL). So every handler ``assay serve`` configures masks, in the message, its arguments and any
formatted traceback:

* API tokens ``<prefix><16 hex id>_<secret>``: the secret (the id is public and names the token
  in the audit log, so it stays);
* JWTs (three base64url segments, the first a JSON header): all of it;
* HTTP Basic and Bearer credentials written out as header values.
"""

from __future__ import annotations

import logging
import re

MASK = "[redacted]"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH = re.compile(r"(?i)\b(basic|bearer|token)(\s+|%20|\+)[A-Za-z0-9._~+/=-]{16,}")


def _token_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + r"([0-9a-f]{16})_[A-Za-z0-9_-]+")


#: Settings.token_prefix's default.
DEFAULT_PREFIX = "assay-"


def redact(text: str, token_prefix: str = DEFAULT_PREFIX) -> str:
    text = _JWT.sub(MASK, text)
    text = _token_pattern(token_prefix).sub(lambda m: f"{token_prefix}{m.group(1)}_{MASK}", text)
    return _AUTH.sub(lambda m: f"{m.group(1)} {MASK}", text)


class RedactingFilter(logging.Filter):
    """Attach to a handler: every record it emits is masked first."""

    def __init__(self, token_prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__()
        self.token_prefix = token_prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.token_prefix)
        if isinstance(record.args, tuple):
            record.args = tuple(self._arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._arg(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.token_prefix)
        return True

    def _arg(self, value: object) -> object:
        # Numbers stay numbers (formats like %d need them); anything else is logged as text, so
        # it is masked as text (an exception or a URL object may quote a credential).
        if value is None or isinstance(value, bool | int | float):
            return value
        return redact(str(value), self.token_prefix)
