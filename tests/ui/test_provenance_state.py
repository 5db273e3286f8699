"""Provenance over time (issue 15, item 3): the states of assay.index.provenance_state, the one
function the pages and the JSON API share."""

from __future__ import annotations

from assay.index.provenance_state import describe_source, file_sources, release_states, source_key

A = {"kind": "GitHub", "repository": "acme/widget", "workflow": "release.yml", "environment": None}
A_ENV = {**A, "environment": "pypi"}
B = {**A, "workflow": "other.yml"}


def prov(*publishers: dict) -> dict:  # type: ignore[type-arg]
    return {"version": 1, "attestation_bundles": [{"publisher": p, "attestations": [{}]} for p in publishers]}


def states(*releases: tuple[str, list]) -> dict[str, str]:  # type: ignore[type-arg]
    out = release_states((v, [file_sources(p) for p in files]) for v, files in releases)
    return {v: r.state for v, r in out.items()}


def test_each_state() -> None:
    assert states(
        ("0.1", [None, None]),  # nothing attested yet
        ("0.2", []),  # no files: nothing to say, and not "previous"
        ("1.0", [prov(A), prov(A)]),
        ("1.1", [prov(A), None]),
        ("1.2", [None]),  # the previous attested release (1.1) had provenance
        ("1.3", [None]),  # still lost: 1.1 is still the previous attested release
        ("1.4", [prov(A_ENV)]),  # the environment is not in a certificate: the same source
        ("2.0", [prov(B)]),
        ("2.1", [prov(A), prov(B)]),
        ("2.2", [prov(B)]),  # one of the previous release's sources: not a change
    ) == {
        "0.1": "none",
        "0.2": "none",
        "1.0": "full",
        "1.1": "partial",
        "1.2": "lost",
        "1.3": "lost",
        "1.4": "full",
        "2.0": "changed",
        "2.1": "inconsistent",
        "2.2": "full",
    }


def test_changed_names_both_sources() -> None:
    out = release_states([("1.0", [file_sources(prov(A))]), ("2.0", [file_sources(prov(B))])])
    changed = out["2.0"]
    assert changed.warning
    assert changed.previous_version == "1.0"
    assert changed.previous_sources == (source_key(A),)
    assert describe_source(changed.sources[0]) == "GitHub: repository acme/widget, workflow other.yml"


def test_junk_provenance_is_no_source() -> None:
    assert file_sources({"attestation_bundles": "x"}) == frozenset()
    assert file_sources({"attestation_bundles": [{"publisher": A, "attestations": []}, 3]}) == frozenset()


def test_the_project_change_hook_frees_a_projects_pages() -> None:
    from assay.index.pages import Rendered
    from assay.storage.changes import ProjectChange
    from assay.ui.cache import UIPages, page_key

    pages = UIPages()
    pages.cache.put(page_key(1, 5, "project", None, None, ""), Rendered(b"one", ""))
    pages.cache.put(page_key(2, 5, "project", None, None, ""), Rendered(b"two", ""))
    pages.keep(1, 5, "loaded")
    pages.forget(ProjectChange(1, 1, "one", listing_changed=False))
    assert pages.cache.get(page_key(1, 5, "project", None, None, "")) is None
    assert pages.loaded(1, 5) is None
    assert pages.cache.get(page_key(2, 5, "project", None, None, "")) is not None
