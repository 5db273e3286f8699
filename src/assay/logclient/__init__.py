"""Clients of an index's transparency log that are not ``assay verify`` (issue 13, items 5, 6):

- `remote`: a log read over HTTP (C2SP tlog-tiles): its checkpoint verified with the log's
  key, consistency with an earlier checkpoint, entries read from ``tile/entries/`` and checked
  against the tree;
- `witness`: ``assay log witness``, which cosigns checkpoints (C2SP tlog-cosignature);
- `monitor`: ``assay log monitor``, which replays the log and reports suspicious changes.

Like ``assay.verify``, nothing here imports the server (import-linter checks it): these run
on other machines than the index, by other people.
"""
