"""The pure parts: verdict rules (as properties), pins files, requirements files, URLs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from assay.publishers import CircleCI, Forgejo, GitHub, GitHubEnterprise, GitLab, Google
from assay.verify.checks import AttestationCheck, BundleCheck, ProvenanceCheck
from assay.verify.errors import InputError
from assay.verify.files import LockedFile
from assay.verify.indexes import integrity_url, pip_args_index, project_page_url, redact
from assay.verify.pins import (
    GitHubRepository,
    GitLabRepository,
    Pin,
    PinFile,
    load_legacy_pins,
    pin_fields,
    proposal,
)
from assay.verify.requirements import parse_requirements
from assay.verify.retrieve import NoProvenance, Unavailable, Unknown
from assay.verify.verdicts import FAILURES, Verdict, judge

FILE = LockedFile(
    name=canonicalize_name("widget"),
    version="1.0",
    filename="widget-1.0.tar.gz",
    sha256="a" * 64,
    index="https://index.invalid/simple/",
)
PINNED = GitHub("acme/widget", "release.yml")
PIN = Pin((PINNED,), source=".provenance.toml")


# ---------------------------------------------------------------------------------------------
# Verdicts: no error path ends in "verified"
# ---------------------------------------------------------------------------------------------

_reasons = st.one_of(st.none(), st.sampled_from(["bad signature", "wrong issuer", "no such claim"]))
_attestations = st.builds(
    AttestationCheck,
    error=_reasons,
    predicate_type=st.just("https://docs.pypi.org/attestations/publish/v1"),
    signer=st.just("https://github.com/acme/widget/.github/workflows/release.yml@refs/tags/v1"),
    pin_results=st.tuples(_reasons),
    block_result=_reasons,
)
_bundles = st.builds(
    BundleCheck,
    publisher=st.just(PINNED.to_publisher()),
    identity=st.sampled_from([PINNED, GitHub("evil/widget", "release.yml"), None]),
    identity_error=st.none(),
    attestations=st.lists(_attestations, min_size=1, max_size=3).map(tuple),
)
_checks = st.builds(
    ProvenanceCheck,
    error=st.sampled_from([None, None, None, "the provenance is not JSON"]),
    bundles=st.lists(_bundles, min_size=1, max_size=3).map(tuple),
)


@given(check=_checks, pinned=st.booleans(), tofu=st.booleans())
def test_verified_only_when_every_attestation_is_sound_and_satisfies_the_pin(
    check: ProvenanceCheck, pinned: bool, tofu: bool
) -> None:
    pin = PIN if pinned else None
    result = judge(FILE, check, pin, expected=PIN.matchers if pinned else (), fresh_pin=tofu and pinned)
    sound = check.error is None and all(att.error is None for b in check.bundles for att in b.attestations)
    satisfied = all(att.pin_results[0] is None for b in check.bundles for att in b.attestations)
    if result.verdict in (Verdict.VERIFIED, Verdict.PINNED):
        assert pinned
        assert sound
        assert satisfied
    if not sound:
        assert result.verdict is Verdict.INVALID
    if sound and pinned and satisfied:
        assert result.verdict in (Verdict.VERIFIED, Verdict.PINNED)
    if sound and pinned and not satisfied:
        assert result.verdict is Verdict.IDENTITY_CHANGED
    if sound and not pinned:
        assert result.verdict is Verdict.UNPINNED


@pytest.mark.parametrize(
    "evidence",
    [
        NoProvenance("HTTP 404"),
        Unknown("HTTP 403"),
        Unavailable("timed out"),
    ],
)
@pytest.mark.parametrize("pinned", [True, False])
def test_no_provenance_is_never_verified(evidence: NoProvenance | Unknown | Unavailable, pinned: bool) -> None:
    result = judge(FILE, evidence, PIN if pinned else None)
    if isinstance(evidence, Unavailable):
        assert result.verdict is Verdict.INVALID
    elif pinned:
        assert result.verdict is Verdict.ATTESTATION_LOST
    else:
        assert result.verdict is Verdict.UNATTESTED
    assert result.verdict is not Verdict.VERIFIED


def test_failures_are_the_contract() -> None:
    assert {v.value for v in FAILURES} == {
        "identity-changed", "unpinned", "attestation-lost", "invalid", "log-missing", "log-mismatch", "log-fork",
        "log-unwitnessed", "not-reproduced", "unapproved",
    }
    assert [v.value for v in Verdict] == [
        "verified",
        "pinned",
        "unattested",
        "identity-changed",
        "unpinned",
        "attestation-lost",
        "invalid",
        "log-missing",
        "log-mismatch",
        "log-fork",
        "log-unwitnessed",
        "not-reproduced",
        "unapproved",
    ]


# ---------------------------------------------------------------------------------------------
# Pins files
# ---------------------------------------------------------------------------------------------

_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)


@given(
    owner=_segment,
    repo=_segment,
    workflow=_segment,
    environment=st.one_of(st.none(), _segment),
    comment=st.one_of(st.none(), st.text(max_size=30)),
    name=_segment,
)
def test_pins_round_trip_through_the_file(
    tmp_path_factory: pytest.TempPathFactory,
    owner: str,
    repo: str,
    workflow: str,
    environment: str | None,
    comment: str | None,
    name: str,
) -> None:
    path = tmp_path_factory.mktemp("pins") / ".provenance.toml"
    identity = GitHub(f"{owner}/{repo}", workflow, environment)
    pins = PinFile(path)
    pins.set(canonicalize_name(name), identity, comment=comment)
    pins.save()
    loaded = PinFile.load(path)
    assert loaded.pins[canonicalize_name(name)].matchers == (identity,)
    assert loaded.pins[canonicalize_name(name)].comment == (comment or None)
    assert loaded.dumps() == path.read_text()  # deterministic


def test_pins_are_written_sorted(tmp_path: Path) -> None:
    pins = PinFile(tmp_path / ".provenance.toml")
    pins.set(canonicalize_name("zeta"), GitHub("a/z", "r.yml"))
    pins.set(canonicalize_name("Alpha_Beta"), Google("svc@x.iam.gserviceaccount.com"))
    text = pins.dumps()
    assert text.index("[packages.alpha-beta]") < text.index("[packages.zeta]")


@pytest.mark.parametrize(
    ("identity", "table"),
    [
        (
            GitLab("g/p", ".gitlab-ci.yml"),
            {"kind": "GitLab", "repository": "g/p", "workflow_filepath": ".gitlab-ci.yml"},
        ),
        (
            GitHubEnterprise("https://ghe.example.com/", "a/b", "r.yml"),
            {
                "kind": "GitHubEnterprise",
                "instance": "https://ghe.example.com",
                "repository": "a/b",
                "workflow": "r.yml",
            },
        ),
        (
            Forgejo("https://f.example.org", "a/b", "r.yml", issuer="https://idp.example.org"),
            {
                "kind": "Forgejo",
                "instance": "https://f.example.org",
                "repository": "a/b",
                "workflow": "r.yml",
                "issuer": "https://idp.example.org",
            },
        ),
    ],
)
def test_pin_tables_leave_out_defaults_only(
    identity: GitLab | GitHubEnterprise | Forgejo, table: dict[str, str]
) -> None:
    assert pin_fields(identity) == table


def test_proposals_keep_only_identifying_fields() -> None:
    circle = CircleCI("p", "d", vcs_origin="github.com/a/b", vcs_ref="refs/heads/main")
    assert proposal(circle) == CircleCI("p", "d")
    assert proposal(Google("e@x", subject="123")) == Google("e@x")


def test_legacy_pins_file(tmp_path: Path) -> None:
    path = tmp_path / ".provenance.txt"
    path.write_text(
        "# comment\n\n"
        "Requests      https://github.com/psf/requests\n"
        "deep          https://gitlab.com/group/sub/project.git/\n"
    )
    pins = load_legacy_pins(path)
    assert pins[canonicalize_name("requests")].matchers == (GitHubRepository("psf/requests"),)
    assert pins[canonicalize_name("deep")].matchers == (GitLabRepository("group/sub/project"),)
    assert pins[canonicalize_name("deep")].source == ".provenance.txt:4"


@pytest.mark.parametrize("line", ["x https://github.com/only-owner", "x ftp://github.com/a/b", "x", "x y z"])
def test_bad_legacy_lines(tmp_path: Path, line: str) -> None:
    path = tmp_path / ".provenance.txt"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match=r"\.provenance\.txt:1"):
        load_legacy_pins(path)


# ---------------------------------------------------------------------------------------------
# Requirements files and URLs
# ---------------------------------------------------------------------------------------------


def test_requirements_syntax() -> None:
    a, b = "a" * 64, "B" * 64
    parsed = parse_requirements(
        f"""
        # a comment
        --index-url https://index.invalid/simple/
        --extra-index-url https://other.invalid/simple/
        Widget_Pro==1.0 ; python_version >= "3.8" \\
            --hash=sha256:{a} \\
            --hash sha256:{b}  # trailing comment
        direct @ https://files.invalid/direct-2.0.tar.gz --hash=sha256:{a}
        """,
        source="r.txt",
    )
    assert parsed.index_url == "https://index.invalid/simple/"
    first, second, direct = parsed.files
    assert (first.name, first.version, first.sha256, first.filename) == ("widget-pro", "1.0", a, None)
    assert second.sha256 == b.lower()
    assert first.index == "https://index.invalid/simple/"
    assert direct.filename == "direct-2.0.tar.gz"
    assert direct.not_on_index


def test_index_urls() -> None:
    assert project_page_url("https://i.invalid/simple", "a-b") == "https://i.invalid/simple/a-b/"
    assert integrity_url("https://i.invalid:8443/pypi/simple/", "a-b", "1.0", "a_b-1.0.tar.gz") == (
        "https://i.invalid:8443/integrity/a-b/1.0/a_b-1.0.tar.gz/provenance"
    )
    assert redact("https://user:tok@i.invalid/simple/") == "https://***@i.invalid/simple/"
    assert pip_args_index(["-r", "x.txt", "--index-url=https://a.invalid/"]) == "https://a.invalid/"
    assert pip_args_index(["-i", "https://b.invalid/", "pkg"]) == "https://b.invalid/"


def test_the_progress_bar_appears_only_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from assay.verify.report import progress_bar

    with progress_bar(3, Console(file=io.StringIO())) as advance:
        assert advance is None
    out = io.StringIO()
    with progress_bar(3, Console(file=out, force_terminal=True)) as advance:
        assert advance is not None
        advance(FILE)
    assert "1/3" in out.getvalue()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000, "is not JSON (PEP 691)"),
        (b"[]", "has no 'files' list (PEP 691)"),
        (b'{"files": {}}', "has no 'files' list (PEP 691)"),
        (b'{"files": [{"filename": "a.whl", "url": "a.whl"}]}', "files[0].hashes: Field required"),
        (b'{"files": [{"filename": 1, "url": "a.whl", "hashes": {}}]}', "files[0].filename"),
        (b'{"files": [{"filename": "a.whl", "url": "a", "hashes": {}, "provenance": 3}]}',
         "files[0].provenance is neither a URL nor null (PEP 740)"),
    ],
)
def test_a_broken_project_page_is_refused_saying_where(body: bytes, message: str) -> None:
    from assay.verify.simple import PageError, parse_project_page

    with pytest.raises(PageError, match=re.escape(message)):
        parse_project_page(body, url="https://index.test/simple/a/")


def test_a_project_page_resolves_urls_and_notes_declared_provenance() -> None:
    from assay.verify.simple import parse_project_page

    body = (b'{"meta": {"api-version": "1.3"}, "files": ['
            b'{"filename": "a-1.whl", "url": "../../f/a-1.whl", "hashes": {"sha256": "AB"}, "provenance": null,'
            b' "yanked": false},'
            b'{"filename": "a-1.tar.gz", "url": "/f/a-1.tar.gz", "hashes": {}, "provenance": "p"}]}')
    page = parse_project_page(body, url="https://index.test/simple/a/")
    wheel, sdist = page.files
    assert (wheel.url, wheel.sha256, wheel.provenance, wheel.declares_provenance) == (
        "https://index.test/f/a-1.whl", "ab", None, True)
    assert (sdist.sha256, sdist.provenance, sdist.declares_provenance) == (
        None, "https://index.test/simple/a/p", True)
