"""Durations in a policy: ``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"``, or ISO 8601
(``"P7D"``, ``"PT12H"``, ``"P1DT6H"``).

A small strict parser (no ISO 8601 library is a dependency): ISO 8601 years and months are
refused, since their length depends on the calendar and a cooldown must mean one fixed span.
"""

from __future__ import annotations

import datetime as dt
import re

_SHORT = re.compile(r"(\d+)([smhdw])")
_SHORT_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# ISO 8601-1 §5.5.2.4 duration, without years and months: PnW, or PnDTnHnMnS (each part optional).
_ISO = re.compile(
    r"P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)"
)


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> dt.timedelta:
    value = text.strip()
    short = _SHORT.fullmatch(value)
    if short:
        return dt.timedelta(**{_SHORT_UNITS[short.group(2)]: int(short.group(1))})
    iso = _ISO.fullmatch(value.upper())
    # "P" and "PT" alone match the pattern but name no duration at all.
    if iso and any(v is not None for v in iso.groupdict().values()) and not value.upper().endswith("T"):
        return dt.timedelta(**{k: int(v) for k, v in iso.groupdict().items() if v is not None})
    raise DurationError(
        f'{text!r} is not a duration: use a number and a unit (s, m, h, d, w: "7d", "12h") '
        'or ISO 8601 without years or months ("P7D", "PT12H", "P1DT6H")'
    )
