"""RFC 6238 time-based one-time passwords (TOTP), the second factor a stage approval needs
(issue 14; npm's ``stage approve`` asks for 2FA the same way), through pyotp.

A code is accepted for its own 30-second step and the one before and after (RFC 6238 section 5.2's
allowance for clock drift and the time it takes to type), and only once: the step it matched
is stored, and a code of that step or an earlier one is refused (section 5.2: "the verifier
MUST NOT accept the second attempt of the OTP after the successful validation").
"""

from __future__ import annotations

import datetime as dt
import hmac
import re

import pyotp

#: The issuer shown by authenticator apps next to the account name.
ISSUER = "assay"
#: How many steps either side of now a code may be from (RFC 6238 section 5.2).
DRIFT_STEPS = 1
_CODE = re.compile(r"^[0-9]{6}$")


def new_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226 section 4 recommends 160)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app enrols from (Key Uri Format)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def well_formed(code: str) -> bool:
    return bool(_CODE.match(code))


def matching_step(secret: str, code: str, last_step: int | None, now: dt.datetime | None = None) -> int | None:
    """The time step ``code`` is valid for, if it is valid now and newer than ``last_step``;
    else None."""
    if not well_formed(code):
        return None
    totp = pyotp.TOTP(secret)
    moment = now or dt.datetime.now(dt.UTC)
    current = totp.timecode(moment)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        step = current + offset
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
