"""Issue 11: one Accept negotiator and one conditional-GET rule for every route (pure parts;
the routes' use of them is tested over HTTP in test_simple_api.py and
tests/attestations/test_real_attestations.py)."""

from __future__ import annotations

import pytest

from assay import mediatypes as mt
from assay.web.conditional import not_modified
from assay.web.negotiation import Offer, Offers, negotiate

INTEGRITY = Offers([Offer(mt.INTEGRITY_JSON_V1, frozenset({mt.INTEGRITY_JSON_V1, mt.JSON}))])


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        (None, True),
        ("", True),
        ("*/*", True),
        ("application/*", True),
        ("application/json", True),
        (f"{mt.INTEGRITY_JSON_V1};q=0.1", True),
        ("text/html", False),
        ("application/json;q=0", False),
        # RFC 9110 12.5.1: the most specific range decides, whatever a wildcard says.
        (f"{mt.INTEGRITY_JSON_V1};q=0, application/json;q=0, */*", False),
        ("application/json;q=nonsense", False),
        ("application/json;q=1.5", False),
    ],
)
def test_negotiation_follows_rfc_9110_q_values(accept: str | None, served: bool) -> None:
    assert (negotiate(accept, INTEGRITY) is not None) is served


@pytest.mark.parametrize(
    ("header", "etag", "matches"),
    [
        ('"abc"', '"abc"', True),
        ('W/"abc"', '"abc"', True),  # weak comparison (RFC 9110 13.1.2)
        ('"abc"', 'W/"abc"', True),
        ('"x", W/"abc"', '"abc"', True),
        (' *', '"abc"', True),
        ('"a,b", "abc"', '"abc"', True),  # a comma inside an opaque-tag is not a separator
        ('"a,b"', '"b"', False),
        ('"abcd"', '"abc"', False),
        ('W/"x"', '"abc"', False),
        ("", '"abc"', False),
    ],
)
def test_if_none_match_compares_weakly(header: str, etag: str, matches: bool) -> None:
    assert not_modified({"if-none-match": header}, etag) is matches
    assert not not_modified({}, etag)
