"""Rebuild pins in .provenance.toml (``assay.verify.rebuilds``): read, refused when malformed,
and written back unchanged when ``--tofu`` or ``assay pins update`` rewrite the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from assay.rebuilds.check import Expected
from assay.verify.errors import InputError
from assay.verify.pins import PinFile
from assay.verify.rebuilds import RebuildPin

TEXT = """
[packages.widget]
kind = "GitHub"
repository = "acme/widget"
workflow = "release.yml"
rebuilt-by = [{issuer = "https://a.example", email = "r@a.example"}, {issuer = "https://b.example", subject = "https://b.example/ci"}]
rebuilds = 1

[packages.gadget]
rebuilt-by = [{issuer = "https://a.example", email = "r@a.example"}]
"""


def test_rebuild_pins_are_read_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / ".provenance.toml"
    pins = PinFile.parse(path, TEXT)
    widget, gadget = canonicalize_name("widget"), canonicalize_name("gadget")
    assert pins.rebuilds[widget] == RebuildPin(
        (Expected("https://a.example", "r@a.example", "email"), Expected("https://b.example", "https://b.example/ci")),
        1,
        (),
    )
    assert pins.rebuilds[gadget].required == 1
    # A rebuild pin alone pins no publisher; beside one, the publisher pin is read as before.
    assert gadget not in pins.pins
    assert pins.pins[widget].summary().startswith("GitHub")
    again = PinFile.parse(path, pins.dumps())
    assert again.rebuilds == pins.rebuilds
    assert again.pins == pins.pins


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("rebuilds = 1", "rebuilds needs rebuilt-by"),
        ("rebuilt-by = []", "non-empty list"),
        ('rebuilt-by = [{email = "r@a.example"}]', "needs issuer"),
        ('rebuilt-by = [{issuer = "https://a.example"}]', "exactly one of email and subject"),
        ('rebuilt-by = [{issuer = "https://a.example", email = "r@a", subject = "s"}]', "exactly one of"),
        ('rebuilt-by = [{issuer = "https://a.example", email = "r@a", sub = "s"}]', "unknown key(s) sub"),
        ('rebuilt-by = [{issuer = "https://a.example", email = "r@a"}]\nrebuilds = 2', "between 1 and 1"),
        ('rebuilt-by = [{issuer = "https://a.example", email = "r@a"}]\nrebuilds = true', "between 1 and 1"),
    ],
)
def test_a_malformed_rebuild_pin_says_what_is_wrong(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(InputError, match=r"packages\.gadget") as caught:
        PinFile.parse(tmp_path / ".provenance.toml", f"[packages.gadget]\n{table}\n")
    assert message in str(caught.value)
