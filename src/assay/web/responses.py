"""Error responses that every client can read.

Upload clients see errors two ways: twine prints the HTTP reason phrase, uv prints the body. So
an error response carries its message in both (see ``reason.py``). JSON endpoints answer JSON.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from assay.web import reason


class _WithReason(Response):
    message: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = reason.set_reason(self.message)
        try:
            await super().__call__(scope, receive, send)
        finally:
            reason.reset_reason(token)


class TextError(_WithReason, PlainTextResponse):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.message = message
        super().__init__(message + "\n", status_code=status, headers=headers)


class JSONError(_WithReason, JSONResponse):
    def __init__(
        self,
        status: int,
        message: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.message = message
        super().__init__(
            body if body is not None else {"message": message},
            status_code=status,
            headers=headers,
            media_type=media_type,
        )
