"""The long fuzz run: ``make fuzz SECONDS=900`` or ``python -m tests.fuzz.run --help``.

``--jobs`` job processes each generate inputs (a ``random.Random`` seeded from ``--seed``
and the job number) and feed them to their own long-lived child (tests/fuzz/runner.py).
At the end the counts are printed, one small example of every defect class are
copied under tests/fuzz/corpus/crashes/ (the regression corpus replayed by
tests/fuzz/test_crash_corpus.py) and every class is written to the findings report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.fuzz import known
from tests.fuzz.mutate import RandomChooser, make_case
from tests.fuzz.runner import KINDS, Finding, Worker

CORPUS = Path(__file__).with_name("corpus") / "crashes"
MAX_SAVED_BYTES = 100_000  # examples kept in the repository stay small
EXAMPLES_PER_CLASS_RUN = 4
EXAMPLES_PER_CLASS_REPO = 1


def slug(signature: str) -> str:
    kind = signature.split(":", 1)[0]
    words = re.sub(r"[^a-z0-9]+", "-", signature.split(":", 1)[-1].lower()).strip("-")[:40]
    digest = hashlib.sha1(signature.encode()).hexdigest()[:8]
    return f"{kind}-{words}-{digest}".replace("--", "-")


def save_case(finding: Finding, folder: Path) -> None:
    assert finding.case is not None
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in finding.case.files.items():
        (folder / name).write_bytes(data)
    (folder / "case.json").write_text(json.dumps(dict(
        signature=finding.signature, kind=finding.kind, detail=finding.detail[:2000],
        stack=finding.stack[-12:], good=finding.case.good, as_files=finding.case.as_files,
        files=sorted(finding.case.files), mutations=finding.case.mutations,
    ), indent=1) + "\n")


def job_main(index: int, args: dict[str, Any]) -> None:
    """One job: generate, run, record; the summary goes to ``outdir/job{index}.json``."""
    outdir = Path(args["outdir"])
    # libtiff and the codecs print to fd 2 while inputs are made; keep that out of the way
    with open(outdir / f"job{index}-stderr.log", "ab") as log:
        os.dup2(log.fileno(), 2)
    if args["code_root"]:
        os.environ["FUZZ_CODE_ROOT"] = args["code_root"]
    rng = random.Random(f"{args['seed']}-{index}")
    chooser = RandomChooser(rng)
    worker = Worker(outdir / f"job{index}", args["timeout"], args["memory"])
    deadline = time.monotonic() + args["seconds"] if args["seconds"] else None
    limit = args["executions"]
    executions = 0
    gen_seconds = 0.0
    counts: Counter[str] = Counter()
    classes: dict[str, dict[str, Any]] = {}
    started = last_report = time.monotonic()
    try:
        while (deadline is None or time.monotonic() < deadline) and (not limit
                                                                     or executions < limit):
            t0 = time.perf_counter()
            case = make_case(chooser)
            gen_seconds += time.perf_counter() - t0
            findings, _ = worker.run(case)
            executions += 1
            for finding in {f.signature: f for f in findings}.values():
                counts[finding.kind] += 1
                entry = classes.setdefault(finding.signature, dict(
                    kind=finding.kind, count=0, first_execution=executions,
                    detail=finding.detail, stack=finding.stack, examples=[]))
                entry["count"] += 1
                if len(entry["examples"]) < EXAMPLES_PER_CLASS_RUN:
                    folder = outdir / "cases" / slug(finding.signature) / f"j{index}-{executions}"
                    save_case(finding, folder)
                    entry["examples"].append(dict(path=str(folder), size=finding.case.size
                                                  if finding.case else 0,
                                                  mutations=finding.case.mutations
                                                  if finding.case else []))
            now = time.monotonic()
            if now - last_report >= 30:
                last_report = now
                rate = executions / (now - started)
                print(f"[job {index}] {executions} executions, {rate:.1f}/s, "
                      f"{sum(counts.values())} findings in {len(classes)} classes", flush=True)
    finally:
        worker.close()
        (outdir / f"job{index}.json").write_text(json.dumps(dict(
            executions=executions, seconds=time.monotonic() - started,
            gen_seconds=gen_seconds, child_starts=worker.restarts, counts=counts,
            classes=classes), indent=1))


def merge(outdir: Path, jobs: int) -> dict[str, Any]:
    total: dict[str, Any] = dict(executions=0, child_starts=0, counts=Counter(), classes={})
    for index in range(jobs):
        path = outdir / f"job{index}.json"
        if not path.exists():
            continue
        job = json.loads(path.read_text())
        total["executions"] += job["executions"]
        total["child_starts"] += job["child_starts"]
        total["counts"].update(job["counts"])
        for signature, entry in job["classes"].items():
            mine = total["classes"].setdefault(signature, dict(entry, count=0, examples=[]))
            mine["count"] += entry["count"]
            mine["examples"] += entry["examples"]
    return total


def keep_in_corpus(total: dict[str, Any]) -> None:
    """Copy the smallest examples of each class into tests/fuzz/corpus/crashes/."""
    for signature, entry in total["classes"].items():
        base = slug(signature)
        existing = sorted(CORPUS.glob(f"{base}*"))
        room = EXAMPLES_PER_CLASS_REPO - len(existing)
        kept = [str(p) for p in existing]
        for example in sorted(entry["examples"], key=lambda e: e["size"]):
            if room <= 0:
                break
            if example["size"] > MAX_SAVED_BYTES:
                continue
            dest = CORPUS / f"{base}-{Path(example['path']).name}"
            if dest.exists():
                continue
            shutil.copytree(example["path"], dest)
            kept.append(str(dest))
            room -= 1
        entry["kept"] = kept


def report(total: dict[str, Any], wall: float, path: Path, code: str) -> str:
    counts = total["counts"]
    rate = total["executions"] / wall if wall else 0.0
    lines = [
        f"executions: {total['executions']} in {wall:.0f} s ({rate:.1f} exec/s), "
        f"child starts: {total['child_starts']}",
        "inputs with: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in KINDS),
        f"defect classes: {len(total['classes'])}",
    ]
    summary = "\n".join(lines)
    md = [f"# Fuzz findings ({time.strftime('%Y-%m-%d %H:%M')})", "",
          f"Code under test: {code}", "", "```", summary, "```", ""]
    ordered = sorted(total["classes"].items(), key=lambda kv: (KINDS.index(kv[1]["kind"]),
                                                                -kv[1]["count"]))
    for signature, entry in ordered:
        reason = known.reason_for(signature)
        md += [f"## {signature}", "",
               f"- kind: {entry['kind']}; inputs: {entry['count']}"
               + (f"; known defect: {reason}" if reason else "; NOT a known defect class"),
               f"- example inputs: {', '.join(entry.get('kept') or [])}"
               f"{'; ' if entry.get('kept') else ''}"
               + ", ".join(e["path"] for e in entry["examples"][:2]),
               f"- mutations of the first example: {'; '.join(entry['examples'][0]['mutations'])}"
               if entry["examples"] else "", "", "```", entry["detail"][:1500]]
        if entry.get("stack"):
            md += ["stack (innermost last):", *entry["stack"][-8:]]
        md += ["```", ""]
    path.write_text("\n".join(md))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="wall time (0: no limit)")
    parser.add_argument("--executions", type=int, default=0,
                        help="inputs in all, shared among the jobs (0: no limit)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", default=str(int(time.time())))
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    parser.add_argument("--memory", type=int, default=2048, help="child RLIMIT_AS, MB")
    parser.add_argument("--outdir", default="/tmp/fuzz_run")
    parser.add_argument("--report", default="/tmp/fuzz_findings.md")
    parser.add_argument("--code-root", default="",
                        help="folder holding the workstation package to test (default: "
                             "this checkout)")
    parser.add_argument("--no-corpus", action="store_true",
                        help="do not copy examples into tests/fuzz/corpus/crashes/")
    args = parser.parse_args(argv)
    if not args.seconds and not args.executions:
        args.seconds = 60
    outdir = Path(args.outdir)
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    per_job = -(-args.executions // args.jobs) if args.executions else 0
    job_args = dict(vars(args), executions=per_job, outdir=str(outdir))
    print(f"fuzzing load_study: {args.jobs} job(s), seed {args.seed}, "
          f"{args.seconds or 'no'} s limit, {args.executions or 'no'} execution limit, "
          f"{args.timeout:g} s / {args.memory} MB per input", flush=True)
    context = multiprocessing.get_context("spawn")
    start = time.monotonic()
    procs = [context.Process(target=job_main, args=(i, job_args)) for i in range(args.jobs)]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        for proc in procs:
            proc.join()
    wall = time.monotonic() - start
    total = merge(outdir, args.jobs)
    if not args.no_corpus:
        keep_in_corpus(total)
    code = args.code_root or str(Path(__file__).resolve().parents[2])
    summary = report(total, wall, Path(args.report), code)
    print(summary)
    for signature, entry in sorted(total["classes"].items(), key=lambda kv: -kv[1]["count"]):
        print(f"  {entry['count']:6d}  {signature}")
    print(f"findings: {args.report}; inputs: {outdir}/cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
