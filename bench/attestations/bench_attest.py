"""PEP 740 attestation verification at upload (issue 4): what verifying two attestations
(PyPI publish v1 + SLSA provenance v1) adds to an upload on a real ``assay serve``.

Set-up: a local Sigstore authority (tests/support/sigstore_authority.py: Fulcio-like CA, CT log,
Rekor-like log with inclusion proofs and signed checkpoints) and its ``trusted_root.json``; the
server runs with ``--sigstore-trust-root`` pointing at it; a local OIDC issuer
(tests/support/oidc_provider.py) and a GitHub publisher registered with the real ``assay admin``
CLI; one upload token minted through ``POST /_/oidc/mint-token`` (Trusted Publishing).

Measured:

1. over HTTP: N distinct small wheels of one project (same size), uploaded one after another on
   a keep-alive connection with the minted token; half carry two attestations, half none,
   interleaved in pairs (the order inside each pair drawn from a fixed seed), so drift in the
   machine's load hits both halves alike; every wheel and every attestation is made before the
   clock starts. Afterwards the simple JSON page must show provenance for exactly the attested
   half;
2. in-process, for context: ``assay.attestations.verify.verify_attestation`` with one cached
   ``TrustRoot`` (what each server worker keeps), per attestation and per pair, plus parsing;
3. a py-spy profile of the server during further attested uploads, by step.

Run through ``bench/attestations/run``; ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    OUT,
    REPO,
    CpuUse,
    code_state,
    cpu_snapshot,
    log,
    machine_facts,
    package_versions,
    percentile,
    py_spy,
    read_collapsed,
    table,
    under,
)
from pypi_attestations import Attestation, AttestationType
from tests.support.dists import make_wheel
from tests.support.oidc_provider import OIDCProvider, github_claims
from tests.support.server import AssayServer
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.upload import upload

AUDIENCE = "assay"
PROJECT = "bench-attest"
REPOSITORY = "acme/bench-attest"
WORKFLOW = "release.yml"
PAYLOAD_BYTES = 16 * 1024  # incompressible bytes inside each wheel: ~17 KB files


def slsa_predicate(filename: str, sha: str) -> dict[str, Any]:
    """A SLSA provenance v1 predicate shaped like GitHub's attest-build-provenance output."""
    repo_url = f"https://github.com/{REPOSITORY}"
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {"ref": "refs/tags/v1.0.0", "repository": repo_url, "path": f".github/workflows/{WORKFLOW}"}
            },
            "internalParameters": {
                "github": {"event_name": "push", "repository_id": "5678", "repository_owner_id": "1234",
                           "runner_environment": "github-hosted"}
            },
            "resolvedDependencies": [{"uri": f"git+{repo_url}@refs/tags/v1.0.0", "digest": {"gitCommit": sha}}],
        },
        "runDetails": {
            "builder": {"id": f"{repo_url}/.github/workflows/{WORKFLOW}@refs/tags/v1.0.0"},
            "metadata": {"invocationId": f"{repo_url}/actions/runs/42/attempts/1"},
        },
    }  # fmt: skip


def sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_dists(directory: Path, count: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        payload = rng.randbytes(PAYLOAD_BYTES)
        # Versions of one length, so every wheel has the same name length and size.
        paths.append(make_wheel(directory, PROJECT, f"1.0.{1000 + i}", extra_files={"bench_attest/data.bin": payload}))
    return paths


def attest_pair(sigstore: LocalSigstore, path: Path) -> list[Attestation]:
    identity = CertIdentity.github(REPOSITORY, WORKFLOW)
    digest = sha256_file(path)
    return [
        sigstore.attest(path.name, digest, identity),
        sigstore.attest(
            path.name, digest, identity, AttestationType.SLSA_PROVENANCE_V1.value,
            slsa_predicate(path.name, "0" * 40),
        ),
    ]  # fmt: skip


def field_json(pair: list[Attestation]) -> str:
    return "[" + ",".join(a.model_dump_json() for a in pair) + "]"


# ------------------------------------------------------------------ HTTP


def mint(server: AssayServer, idp: OIDCProvider) -> str:
    with server.client() as http:
        response = http.post("/_/oidc/mint-token", json={"token": idp.token(AUDIENCE, github_claims(REPOSITORY))})
    if response.status_code != 200:
        raise RuntimeError(f"mint failed: {response.status_code} {response.text}")
    return str(response.json()["token"])


def _server_cpu(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    rest = raw[raw.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def upload_all(
    server: AssayServer, token: str, plan: list[tuple[Path, str | None]]
) -> tuple[dict[str, float], dict[str, float], CpuUse]:
    """Upload in order. Returns latency by filename, server CPU seconds by filename (clock-tick
    resolution: only sums over many uploads mean something) and the phase's CPU use."""
    assert server.proc is not None
    pid = server.proc.pid
    latency: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with server.client() as http:
        a = cpu_snapshot(pid)
        for path, attestations in plan:
            c0 = _server_cpu(pid)
            t0 = time.perf_counter()
            response = upload(http, path, token, attestations=attestations)
            latency[path.name] = time.perf_counter() - t0
            cpu[path.name] = _server_cpu(pid) - c0
            if response.status_code != 200:
                raise RuntimeError(f"upload of {path.name} failed: {response.status_code} {response.text[:400]}")
        b = cpu_snapshot(pid)
    return latency, cpu, CpuUse.between(a, b)


def check_provenance(server: AssayServer, attested: set[str], total: int) -> int:
    with server.client() as http:
        page = http.get(f"/simple/{PROJECT}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    files = {f["filename"]: f for f in page["files"]}
    with_prov = {name for name, f in files.items() if f.get("provenance")}
    if len(files) < total or not attested <= with_prov:
        raise RuntimeError(f"expected provenance on {len(attested)} files, found {len(with_prov)}")
    return len(with_prov & attested)


# ------------------------------------------------------------------ in-process


def in_process(trust_root_path: Path, pairs: list[tuple[Path, list[Attestation]]], rounds: int) -> dict[str, Any]:
    from assay.attestations.trust import load_trust_root
    from assay.attestations.verify import parse_attestation, verify_attestation
    from assay.publishers import GitHub

    trust = load_trust_root(trust_root_path)
    policy = GitHub(repository=REPOSITORY, workflow=WORKFLOW, environment=None).policy()
    docs = [(path.name, sha256_file(path), [json.loads(a.model_dump_json()) for a in pair]) for path, pair in pairs]
    # Warm: the verifier is built lazily, the first call imports and caches.
    name, digest, pair_docs = docs[0]
    for doc in pair_docs:
        verify_attestation(parse_attestation(doc), filename=name, sha256=digest, policy=policy, trust=trust)
    results: dict[str, list[float]] = {"parse": [], "publish": [], "slsa": [], "pair": []}
    cpu: dict[str, list[float]] = {k: [] for k in results}
    for i in range(rounds):
        name, digest, pair_docs = docs[i % len(docs)]
        t_pair, c_pair = time.perf_counter(), time.thread_time()
        for label, doc in zip(("publish", "slsa"), pair_docs, strict=True):
            c0, t0 = time.thread_time(), time.perf_counter()
            attestation = parse_attestation(doc)
            c1, t1 = time.thread_time(), time.perf_counter()
            verify_attestation(attestation, filename=name, sha256=digest, policy=policy, trust=trust)
            c2, t2 = time.thread_time(), time.perf_counter()
            results["parse"].append(t1 - t0)
            cpu["parse"].append(c1 - c0)
            results[label].append(t2 - t1)
            cpu[label].append(c2 - c1)
        results["pair"].append(time.perf_counter() - t_pair)
        cpu["pair"].append(time.thread_time() - c_pair)
    return {k: {"p50_ms": percentile(v, 50) * 1000, "p99_ms": percentile(v, 99) * 1000,
                "mean_ms": sum(v) / len(v) * 1000, "n": len(v), "cpu_p50_ms": percentile(cpu[k], 50) * 1000}
            for k, v in results.items()}  # fmt: skip


# ------------------------------------------------------------------ profile


def _fn(frame: str) -> str:
    return frame.split(" (", 1)[0]


def upload_step(frames: list[str]) -> str | None:
    """Which step of the upload request a server stack belongs to (None: not request work)."""
    names = [_fn(f) for f in frames]
    if "AttestationCheck.check" in names:
        if "verify_attestation" in names:
            sub = names[names.index("verify_attestation") + 1 :]
            if not sub:
                return "attestations: verify (own code)"
            if "Verifier.verify_dsse" in sub:
                return "attestations: sigstore Verifier.verify_dsse"
            if "Attestation.to_bundle" in sub:
                return "attestations: Attestation.to_bundle"
            return "attestations: verify (subject, predicate checks)"
        if "parse_attestation" in names:
            return "attestations: parse (pydantic)"
        if "AttestationCheck._identities" in names:
            return "attestations: publisher identity (DB read)"
        if "provenance" in names or "bundle" in names:
            return "attestations: build provenance object"
        return "attestations: other"
    if "read_upload_form" in names or "MultipartParser" in " ".join(names):
        return "read multipart form (stage file)"
    if "prepare" in names:
        return "prepare: validate wheel, read metadata"
    if "Uploader.commit" in names:
        return "commit: publish blobs, rows, audit (+ fsync)"
    if "legacy_upload.<locals>._auth" in names or "authenticate" in names:
        return "authenticate token"
    if "legacy_upload" in names:
        return "upload handler: other"
    return None


def verify_part(frames: list[str]) -> str:
    """Which part of sigstore's ``Verifier.verify_dsse`` a stack (below it) belongs to."""
    names = [_fn(f) for f in frames]
    top = names[0] if names else "(self)"
    if "TrustedRoot.ct_keyring" in names or "TrustedRoot.rekor_keyring" in names:
        return "CT and Rekor keyrings, rebuilt from the trust root on every call"
    if "Verifier._verify_chain_at_time" in names:
        return "certificate chain to the trust root (X.509 path building, at the signing time)"
    if "verify_sct" in names:
        return "SCT: CT log signature over the precertificate"
    if "TransparencyLogEntry._verify" in names:
        return "log entry: inclusion proof, signed checkpoint, SET"
    if any(n.endswith("Policy.verify") or n in ("AllOf.verify", "AnyOf.verify") for n in names):
        return "identity policy (certificate extensions, pypi-attestations)"
    if "Verifier._establish_time" in names:
        return "establish the signing time"
    if top == "_verify" and frames and "sigstore/dsse" in frames[0]:
        return "DSSE envelope signature (ECDSA P-256)"
    if "_validate_dsse_v001_entry_body" in names:
        return "log entry body vs envelope (rekor-types model, PEM re-encoding)"
    return "other (" + top + ")"


def _spy(server: AssayServer, token: str, plan: list[tuple[Path, str | None]], rate: int, raw: Path) -> float:
    spy = py_spy()
    assert spy is not None
    assert server.proc is not None
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(server.proc.pid), "--idle", "--nonblocking", "--rate", str(rate),
         "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # let py-spy attach
    latency, _, _ = upload_all(server, token, plan)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote no profile: {err.strip()[-400:]}")
    return sum(latency.values()) / len(latency)


def profile(
    server: AssayServer, token: str, attested: list[tuple[Path, str | None]],
    plain: list[tuple[Path, str | None]], rate: int, out: Path,
) -> dict[str, Any] | None:  # fmt: skip
    """py-spy on the server during attested uploads, then during as many plain ones: ms per
    upload in each step of the request, side by side."""
    if py_spy() is None:
        return None
    result: dict[str, Any] = {"count": len(attested), "rate": rate, "raw": []}
    steps: dict[str, dict[str, float]] = {}
    for label, plan in (("with", attested), ("without", plain)):
        raw = out / f"upload-profile-{label}.txt"
        result[f"mean_ms_{label}"] = _spy(server, token, plan, rate, raw) * 1000
        result["raw"].append(str(raw.relative_to(REPO)) if raw.is_relative_to(REPO) else str(raw))
        per = 1000 / rate / len(plan)
        stacks = read_collapsed(raw)
        for frames, count in stacks:
            step = upload_step(frames)
            if step is not None:
                steps.setdefault(step, {"with": 0.0, "without": 0.0})[label] += count * per
        if label == "with":
            parts: dict[str, float] = {}
            for frames, count in under(stacks, "Verifier.verify_dsse"):
                part = verify_part(frames)
                parts[part] = parts.get(part, 0.0) + count * per
            result["verify_dsse"] = sorted(parts.items(), key=lambda kv: -kv[1])
    result["steps"] = sorted(steps.items(), key=lambda kv: -kv[1]["with"])
    return result


# ------------------------------------------------------------------ driver


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p90_ms": percentile(values, 90) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "mean_ms": sum(values) / len(values) * 1000,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.out))
    dists_dir = work / "dists"
    dists_dir.mkdir()
    result: dict[str, Any] = {}
    with OIDCProvider() as idp:
        log("local Sigstore authority: keys and trusted_root.json")
        sigstore = LocalSigstore(work / "sigstore")
        total = args.uploads + 2 * args.warmup + 2 * args.profile
        log(f"making {total} wheels")
        dists = make_dists(dists_dir, total, args.seed)
        sizes = sorted(p.stat().st_size for p in dists)
        result["wheel_bytes"] = [sizes[0], sizes[-1]]

        rng = random.Random(args.seed)
        warm = dists[: 2 * args.warmup]
        timed = dists[2 * args.warmup : 2 * args.warmup + args.uploads]
        profiled = dists[2 * args.warmup + args.uploads :]
        profiled_plain = profiled[args.profile :]
        profiled = profiled[: args.profile]
        log(f"signing {len(timed) // 2 + args.warmup + args.profile} attestation pairs (publish + SLSA)")
        plan: list[tuple[Path, str | None]] = []
        attested: set[str] = set()
        pairs_for_in_process: list[tuple[Path, list[Attestation]]] = []
        for a, b in zip(timed[0::2], timed[1::2], strict=True):
            pair = attest_pair(sigstore, a)
            pairs_for_in_process.append((a, pair))
            attested.add(a.name)
            couple: list[tuple[Path, str | None]] = [(a, field_json(pair)), (b, None)]
            rng.shuffle(couple)
            plan += couple
        warm_plan: list[tuple[Path, str | None]] = []
        for a, b in zip(warm[0::2], warm[1::2], strict=True):
            warm_plan += [(a, field_json(attest_pair(sigstore, a))), (b, None)]
        profile_plan = [(p, field_json(attest_pair(sigstore, p))) for p in profiled]
        attested |= {p.name for p, f in warm_plan if f} | {p.name for p in profiled}
        attest_bytes = [len(f) for _, f in plan if f]
        result["attestations_field_bytes"] = [min(attest_bytes), max(attest_bytes)]

        server = AssayServer(
            work / "index",
            args=["--sigstore-trust-root", str(sigstore.trusted_root_path)],
            env={"ASSAY_ACCESS_LOG": "false"},
        )
        server.start()
        try:
            server.admin("issuer", "add", "--issuer", idp.issuer)
            server.admin("user", "create", "owner")
            server.admin("project", "create", PROJECT, "--owner", "owner")
            server.admin(
                "publisher", "add", "github", "--project", PROJECT, "--issuer", idp.issuer,
                "--repository", REPOSITORY, "--workflow", WORKFLOW,
            )  # fmt: skip
            token = mint(server, idp)
            log(f"warm-up: {len(warm_plan)} uploads")
            upload_all(server, token, warm_plan)
            log(f"timed: {len(plan)} uploads, half with two attestations, interleaved")
            latency, cpu, use = upload_all(server, token, plan)
            halves = {"with": [p.name for p, f in plan if f], "without": [p.name for p, f in plan if not f]}
            for kind, names in halves.items():
                result[kind] = stats([latency[n] for n in names]) | {
                    "server_cpu_ms": sum(cpu[n] for n in names) / len(names) * 1000
                }
            result["cpu"] = use.__dict__
            # Paired differences: each attested upload against the plain one of its pair.
            diffs = [latency[a.name] - latency[b.name] for a, b in zip(timed[0::2], timed[1::2], strict=True)]
            result["paired_diff_p50_ms"] = percentile(diffs, 50) * 1000
            result["provenance_files"] = check_provenance(server, {p.name for p, f in plan if f}, len(plan))
            if args.profile:
                log(f"profile: py-spy on the server during {args.profile} attested, then {args.profile} plain uploads")
                plain_plan: list[tuple[Path, str | None]] = [(p, None) for p in profiled_plain]
                result["profile"] = profile(server, token, profile_plan, plain_plan, args.profile_rate, args.out)
        finally:
            server.stop()
        log(f"in-process: verify_attestation x {args.rounds} pairs")
        result["in_process"] = in_process(sigstore.trusted_root_path, pairs_for_in_process, args.rounds)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return result


def report(args: argparse.Namespace, r: dict[str, Any], facts: dict[str, str]) -> str:
    w, wo = r["with"], r["without"]
    out = [f"Command: `{args.command}`", ""]
    out += [f"- {facts['date']}; {facts['machine']}; {facts['python']}", f"- {facts['load']}", f"- {facts['versions']}",
            f"- {facts['code']}"]
    out += [
        f"- {args.uploads} timed uploads of distinct wheels of one project ({r['wheel_bytes'][0]}-"
        f"{r['wheel_bytes'][1]} bytes) on one keep-alive connection, with a Trusted Publishing token; "
        f"half with two attestations (publish v1 + SLSA provenance v1, `attestations` field "
        f"{r['attestations_field_bytes'][0]}-{r['attestations_field_bytes'][1]} bytes) from a local Sigstore "
        f"under its own trusted_root.json, interleaved in pairs; {2 * args.warmup} warm-up uploads before; "
        f"SQLite, 1 worker; provenance served afterwards for all {r['provenance_files']} attested files (checked)",
        f"- load during the timed run: server {r['cpu']['server']:.2f} cores, client {r['cpu']['client']:.2f}, "
        f"other processes {r['cpu']['other']:.2f} (of 2)",
        "",
    ]
    rows = []
    for label, s in (("without attestations", wo), ("with 2 attestations", w)):
        rows.append([label, s["n"], f"{s['p50_ms']:.2f}", f"{s['p90_ms']:.2f}", f"{s['p99_ms']:.2f}",
                     f"{s['mean_ms']:.2f}", f"{s['server_cpu_ms']:.1f}"])  # fmt: skip
    rows.append([
        "**added by verification**", "", f"**{w['p50_ms'] - wo['p50_ms']:.2f}**", f"{w['p90_ms'] - wo['p90_ms']:.2f}",
        f"{w['p99_ms'] - wo['p99_ms']:.2f}", f"{w['mean_ms'] - wo['mean_ms']:.2f}",
        f"{w['server_cpu_ms'] - wo['server_cpu_ms']:.1f}",
    ])  # fmt: skip
    out.append(table(["upload", "n", "p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)", "server CPU per upload (ms)"],
                     rows))  # fmt: skip
    out += ["", f"Median of the paired differences (attested minus plain upload of the same pair): "
            f"{r['paired_diff_p50_ms']:.2f} ms.", ""]  # fmt: skip
    ip = r["in_process"]
    out += ["In-process, one cached TrustRoot (`verify_attestation`, no HTTP, no database):", ""]
    labels = {"parse": "parse one attestation (pydantic)", "publish": "verify the publish attestation",
              "slsa": "verify the SLSA provenance attestation", "pair": "parse + verify both (what an upload does)"}
    out.append(table(["step", "n", "p50 (ms)", "p99 (ms)", "mean (ms)", "CPU time p50 (ms)"],
                     [[labels[k], v["n"], f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}", f"{v['mean_ms']:.2f}",
                       f"{v['cpu_p50_ms']:.2f}"] for k, v in ip.items()]))  # fmt: skip
    p = r.get("profile")
    if isinstance(p, dict):
        raws = ", ".join(f"`{x}`" for x in p["raw"])
        out += ["", f"Where the server's time goes (py-spy --idle at {p['rate']} Hz during {p['count']} attested "
                f"uploads, then {p['count']} plain ones; mean latency under the profiler {p['mean_ms_with']:.1f} "
                f"and {p['mean_ms_without']:.1f} ms; profiles in {raws}), ms of wall time per upload:", ""]  # fmt: skip
        out.append(table(["step of the upload request", "with 2 attestations", "without", "difference"],
                         [[k, f"{v['with']:.2f}", f"{v['without']:.2f}", f"{v['with'] - v['without']:+.2f}"]
                          for k, v in p["steps"]]))  # fmt: skip
        out += ["", "Inside sigstore's `Verifier.verify_dsse` (both attestations of an upload):", ""]
        out.append(table(["part", "ms per upload"], [[k, f"{v:.2f}"] for k, v in p["verify_dsse"]]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=300, help="timed uploads, half attested (300)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up pairs (10)")
    parser.add_argument("--rounds", type=int, default=300, help="in-process verification rounds (300 pairs)")
    parser.add_argument("--profile", type=int, default=100, help="attested uploads under py-spy (100; 0: none)")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second (200)")
    parser.add_argument("--seed", type=int, default=740)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (wheels, index, trust root)")
    parser.add_argument("--out", type=Path, default=OUT / "attestations", help="work dir (bench/out/attestations)")
    args = parser.parse_args(argv)
    if args.uploads % 2:
        parser.error("--uploads must be even (pairs)")
    args.command = "bench/attestations/run " + shlex.join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    facts["code"] = code_state()
    facts["versions"] = package_versions("sigstore", "pypi-attestations", "cryptography", "uvicorn", "sqlalchemy")
    started = time.perf_counter()
    result = run(args)
    text = report(args, result, facts)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"results-{stamp}.json").write_text(json.dumps({"facts": facts, "result": result}, indent=1))
    (args.out / f"results-{stamp}.md").write_text(text + "\n")
    print(text)
    log(f"done in {time.perf_counter() - started:.0f} s; results in {args.out}/results-{stamp}.*")
    return 0
