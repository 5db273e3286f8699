"""Issue 6, item 3, the short version: bench/load/load.py (the long run is ``bench/load/run``)
for ASSAY_LOAD_SECONDS (CI: 15 s) with 8 clients against ``assay serve --workers 2`` on
PostgreSQL. Passes only with zero 5xx, every request answered, every accepted upload
downloaded back byte-identical, no corrupt download during the run, and fsck clean (the driver
checks each and exits 1 otherwise; the figures are asserted again here from its JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import LOAD_SECONDS
from tests.support.postgres import fresh_database

DRIVER = Path(__file__).resolve().parents[2] / "bench" / "load" / "load.py"


def test_mixed_load_on_two_workers(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    with fresh_database() as url:
        result = subprocess.run(
            [
                sys.executable, str(DRIVER), "--seconds", str(LOAD_SECONDS), "--clients", "8", "--workers", "2",
                "--seed-projects", "6", "--database-url", url, "--json", str(out),
            ],
            capture_output=True,
            text=True,
            timeout=LOAD_SECONDS + 300,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    print("\n" + result.stdout)
    report = json.loads(out.read_text())
    assert report["server_errors"] == 0
    assert report["no_answer_count"] == 0
    assert report["corrupt_downloads"] == []
    assert report["lost_or_corrupt"] == []
    assert report["fsck_problems"] == []
    assert report["uploads_accepted"] > 0
    assert report["uploads_verified"] == report["uploads_accepted"]
    # Every kind of request was made, and answered as expected.
    for kind, figures in report["kinds"].items():
        assert figures["requests"] > 0, kind
        assert set(figures["statuses"]) == {"200"}, (kind, figures["statuses"])
