"""What appending to the transparency log adds to a commit (issue 13's target: < 1 ms per upload
at 100,000 entries, and no growth with the log's size beyond log n).

For each backend (SQLite in a temporary directory, with assay's own settings: WAL,
synchronous=FULL; PostgreSQL: a fresh database on the local server), in one run:

1. on an empty log, ``--uploads`` write transactions each shaped like an upload's commit
   without its ORM rows (an audit row), timed twice over alternately: without and with
   ``assay.log.store.append`` of a real upload entry;
2. the log is then filled to ``--entries`` entries (bulk-inserted entries and their stored
   hashes, computed in memory by assay.log.merkle: the very rows appends would have written);
3. the same timings again at that size.

Reported: median and p99 of the ``append`` call itself (inside the transaction) and of the
whole transaction including its commit, with and without the append; and the cost per entry of
``integrate`` (hashing the new entries into the tree, off the upload path, before a checkpoint
is signed), for the uploads just appended, in one call. Usage:

    .venv/bin/python -m bench.log.append [--entries 100000] [--uploads 400] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from assay import audit
from assay.log import entries, merkle, store
from assay.storage.db import Database
from assay.storage.models import LogEntry, LogHash, LogState

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def entry(i: int) -> dict[str, object]:
    return entries.upload(
        project=f"proj-{i % 1000}", version=f"1.{i}", filename=f"proj_{i % 1000}-1.{i}-py3-none-any.whl",
        sha256=hashlib.sha256(b"%d" % i).hexdigest(), size=12345 + i, upload_time=NOW, publisher=None,
        token=f"{i:016x}", provenance=None,
    )


def fill(db: Database, count: int) -> None:
    """Bring the log to `count` entries with the rows appends would have written."""
    mem = merkle.MemoryHashStore()
    with db.write() as session:
        start = store.size(session)
        assert start == 0
    batch_e: list[dict[str, object]] = []
    for i in range(count):
        data = entries.encode(entry(i))
        mem.append(data)
        batch_e.append({"seq": i, "kind": "upload", "filename": f"f{i}", "data": data, "created": NOW})
    with db.write() as session:
        for at in range(0, count, 10_000):
            session.execute(sa.insert(LogEntry), batch_e[at : at + 10_000])
        hashes = [{"idx": i, "hash": h} for i, h in enumerate(mem.hashes)]
        for at in range(0, len(hashes), 20_000):
            session.execute(sa.insert(LogHash), hashes[at : at + 20_000])
        session.execute(sa.update(LogState).where(LogState.id == 1).values(size=count))
    if not db.is_sqlite:
        # Planner statistics, as autovacuum keeps them on a database that grew over time (right
        # after a bulk load they still say "empty", and range reads of entries scan the table).
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE log_entries, log_hashes")
            conn.commit()


def timings(db: Database, uploads: int, offset: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"append": [], "with": [], "without": [], "integrate": []}
    for n in range(uploads):
        for logged in (False, True):
            t0 = time.perf_counter()
            with db.write() as session:
                audit.record(session, actor="bench", action="file:upload", target=f"f{offset + n}")
                if logged:
                    session.flush()  # the audit row: the upload's own work, not the append's
                    t1 = time.perf_counter()
                    store.append(session, entry(offset + n))
                    out["append"].append(time.perf_counter() - t1)
            out["with" if logged else "without"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    assert store.integrate(db) == offset + uploads
    out["integrate"].append((time.perf_counter() - t0) / uploads)
    return out


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


@contextmanager
def database(backend: str) -> Iterator[Database]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
            db.migrate()
            yield db
            db.dispose()
    else:
        from tests.support.postgres import fresh_database

        with fresh_database() as url:
            db = Database(url)
            db.migrate()
            yield db
            db.dispose()


def run(backend: str, count: int, uploads: int) -> None:
    with database(backend) as db:
        empty = timings(db, uploads, 0)
        with db.write() as session:  # back to empty, then fill
            session.execute(sa.delete(LogEntry))
            session.execute(sa.delete(LogHash))
            session.execute(sa.update(LogState).values(size=0))
        t0 = time.perf_counter()
        fill(db, count)
        filled = time.perf_counter() - t0
        big = timings(db, uploads, count)
        with db.read() as session:
            final = store.size(session)
        print(f"\n{backend}: {uploads} uploads on an empty log, then on {count:,} entries (filled in {filled:.1f} s)")
        for label, t in (("empty log", empty), (f"{count:,} entries", big)):
            print(f"  {label:>16}: append {summary(t['append'])}")
            print(f"  {'':>16}  transaction with append {summary(t['with'])}; without {summary(t['without'])}")
            print(f"  {'':>16}  integrate {t['integrate'][0] * 1000:.3f} ms per entry")
        assert final == count + uploads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--uploads", type=int, default=400)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.entries, args.uploads)


if __name__ == "__main__":
    main()
