"""The policy file: the issue's shape parses; bad files get an error naming the key."""

from __future__ import annotations

import datetime as dt

import pytest

from assay.mirror.durations import DurationError, parse_duration
from assay.mirror.policy import PolicyError, parse_policy

ISSUE_SHAPE = """
[cooldown]
min-age = "7d"                 # ISO 8601 durations and "7d" / "12h"
exempt = ["certifi"]
[provenance]
require = "pinned"             # "none" (default) | "attested" | "pinned"
pins = "pins.toml"             # relative to the policy file; .provenance.toml format
tofu = true                    # record pins for projects that have none
block-lost = true
[projects]
allow = []                     # empty: every project
deny = ["evil-package"]
[projects.override.some-project]
require = "attested"           # any [provenance] or [cooldown] key, for one project
"""
PINS = '[packages.sampleproject]\nkind = "GitHub"\nrepository = "pypa/sampleproject"\nworkflow = "release.yml"\n'


def test_the_issue_shape() -> None:
    policy = parse_policy(ISSUE_SHAPE, PINS, source="policy.toml")
    assert set(policy.pins) == {"sampleproject"}
    assert policy.rules("certifi").min_age is None
    assert policy.rules("Some_Project").require == "attested"
    other = policy.rules("other")
    assert (other.min_age, other.require, other.tofu, other.block_lost) == (dt.timedelta(days=7), "pinned", True, True)
    assert policy.rules("Evil.Package").listed_out == "on the policy's deny list"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", dt.timedelta(days=7)),
        ("12h", dt.timedelta(hours=12)),
        ("2w", dt.timedelta(weeks=2)),
        ("P7D", dt.timedelta(days=7)),
        ("PT12H", dt.timedelta(hours=12)),
        ("P1DT6H30M", dt.timedelta(days=1, hours=6, minutes=30)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1M", "P1Y", "7 days", "-7d", "7D", "P1DT"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[cooldown]\nmin_age = '7d'\n", "cooldown.min_age: unknown key"),
        ("[provenance]\nrequire = 'signed'\n", "provenance.require: Input should be 'none', 'attested' or 'pinned'"),
        ("[provenance]\ntofu = 'yes'\n", "provenance.tofu: Input should be a valid boolean"),
        ("[projects]\ndeny = 'evil'\n", "projects.deny"),
        ("[projects.override.x]\nexempt = ['x']\n", "projects.override.x.exempt: unknown key"),
        ("[provenance]\nrequire = 'pinned'\n", 'require = "pinned" needs pins'),
        ("[provenance]\npins = 'p.toml'\n", "the pins file 'p.toml' does not exist"),
        ("[cooldown\n", "is not valid TOML"),
    ],
)
def test_bad_files(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=r"policy\.toml") as info:
        parse_policy(text, None, source="policy.toml")
    assert message in str(info.value)
