"""The rebuild statement: an in-toto v1 statement whose subject is the index's wheel (name and
sha256) and whose predicate says how it was rebuilt and whether the rebuilt bytes matched.

Modelled on google/oss-rebuild's ``ArtifactEquivalence@v0.1`` (a SLSA provenance v1 shaped
predicate: ``buildDefinition.externalParameters`` names the ``candidate`` (the rebuilt file)
and the ``target`` (the index's file), ``resolvedDependencies`` gives both digests, and
``runDetails`` who ran it and when). Unlike ArtifactEquivalence it also carries a mismatch:
``outcome`` is ``match`` or ``mismatch``, so the same signed statement reports either, and it
compares exact bytes (no normalisation: a wheel built from the sdist under the sdist's
``SOURCE_DATE_EPOCH`` either is the index's wheel or is not).

Its own predicate type (``PREDICATE_TYPE``), so that a rebuild statement can never be taken
for a PEP 740 publish attestation (PyPI publish v1, SLSA provenance v1) or the reverse.
Pure data: the index and the client both import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: in-toto's predicateType is a URI (RFC 3986); a URN, as no host of ours serves the schema.
PREDICATE_TYPE = "urn:assay:rebuild:v1"
#: ``buildDefinition.buildType``: a wheel built from the sdist with pypa/build.
BUILD_TYPE = "urn:assay:rebuild:pypa-build-wheel:v1"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
OUTCOMES = ("match", "mismatch")
#: The ``resolvedDependencies`` name of the rebuilt file, as ArtifactEquivalence's candidate.
CANDIDATE_PREFIX = "rebuild/"


class PredicateError(ValueError):
    """A statement that is not a rebuild statement; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class RebuildClaim:
    """What a rebuild statement claims about its subject."""

    filename: str
    #: The index's file's sha256 (the subject's digest).
    sha256: str
    #: The rebuilt file's sha256.
    rebuilt_sha256: str
    outcome: str
    #: The sdist it was rebuilt from (filename and sha256), as the rebuilder downloaded it.
    source: str
    source_sha256: str
    source_date_epoch: int | None


def predicate(
    *,
    filename: str,
    target_url: str,
    sha256: str,
    rebuilt_sha256: str,
    sdist: str,
    sdist_url: str,
    sdist_sha256: str,
    source_date_epoch: int | None,
    isolated: bool,
    builder: Mapping[str, str],
    started: str,
    finished: str,
) -> dict[str, Any]:
    candidate = CANDIDATE_PREFIX + filename
    return {
        "outcome": "match" if rebuilt_sha256 == sha256 else "mismatch",
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"candidate": candidate, "target": target_url, "source": sdist_url},
            "internalParameters": {
                "SOURCE_DATE_EPOCH": None if source_date_epoch is None else str(source_date_epoch),
                "isolated": isolated,
            },
            "resolvedDependencies": [
                {"name": candidate, "digest": {"sha256": rebuilt_sha256}},
                {"name": target_url, "digest": {"sha256": sha256}},
                {"name": sdist, "uri": sdist_url, "digest": {"sha256": sdist_sha256}},
            ],
        },
        "runDetails": {
            "builder": {"id": "assay rebuild", "version": dict(builder)},
            "metadata": {"startedOn": started, "finishedOn": finished},
        },
    }


def _sha256(entry: Any) -> str:
    digest = entry.get("digest") if isinstance(entry, dict) else None
    value = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(value, str) or len(value) != 64:
        raise PredicateError("a resolvedDependencies entry has no sha256 digest")
    return value.lower()


def parse(statement: Any, *, subject: tuple[str, str] | None = None) -> RebuildClaim:
    """The claim of a parsed in-toto statement; raises ``PredicateError``. With ``subject``
    (filename, sha256), a statement about another file is refused first, saying so."""
    if not isinstance(statement, dict):
        raise PredicateError("the statement is not a JSON object")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise PredicateError(f"the predicate type is {statement.get('predicateType')!r}, not {PREDICATE_TYPE!r}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise PredicateError("the statement must have exactly one subject (the index's file)")
    name = subjects[0].get("name")
    if not isinstance(name, str):
        raise PredicateError("the subject has no name")
    sha256 = _sha256(subjects[0])
    if subject is not None and name != subject[0]:
        raise PredicateError(f"the statement is about {name!r}, not {subject[0]!r}")
    if subject is not None and sha256 != subject[1].lower():
        raise PredicateError(f"the statement's subject sha256 ({sha256}) is not the index's file's ({subject[1]})")
    body = statement.get("predicate")
    if not isinstance(body, dict):
        raise PredicateError("the statement has no predicate")
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        raise PredicateError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    definition = body.get("buildDefinition")
    deps = definition.get("resolvedDependencies") if isinstance(definition, dict) else None
    if not isinstance(deps, list):
        raise PredicateError("the predicate has no buildDefinition.resolvedDependencies")
    candidate = next((d for d in deps if isinstance(d, dict) and d.get("name") == CANDIDATE_PREFIX + name), None)
    if candidate is None:
        raise PredicateError(f"resolvedDependencies names no {CANDIDATE_PREFIX + name!r} (the rebuilt file)")
    rebuilt = _sha256(candidate)
    if (outcome == "match") != (rebuilt == sha256):
        raise PredicateError(f"outcome {outcome!r} contradicts the digests (index {sha256}, rebuilt {rebuilt})")
    source = next(
        (d for d in deps if isinstance(d, dict) and isinstance(d.get("name"), str) and d["name"].endswith(".tar.gz")),
        None,
    )
    if source is None:
        raise PredicateError("resolvedDependencies names no sdist (.tar.gz) the file was rebuilt from")
    params = definition.get("internalParameters") if isinstance(definition, dict) else None
    epoch_text = params.get("SOURCE_DATE_EPOCH") if isinstance(params, dict) else None
    try:
        epoch = int(epoch_text) if isinstance(epoch_text, str) else None
    except ValueError:
        raise PredicateError(f"SOURCE_DATE_EPOCH {epoch_text!r} is not an integer") from None
    return RebuildClaim(name, sha256, rebuilt, outcome, source["name"], _sha256(source), epoch)
