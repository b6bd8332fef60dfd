"""A short, reproducible fuzz run over ``load_study`` (the long one: ``make fuzz``).

Hypothesis draws every decision of the mutators (tests/fuzz/mutate.py) with a fixed
derandomised seed; each input runs in the child worker, so a crash, hang or memory blow-up
is a finding instead of the end of the test run. Findings of a class listed in
tests/fuzz/known.py are expected (xfail, not strict) until their fix lands; any other
finding fails ``test_no_unknown_defects``.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz import known
from tests.fuzz.mutate import Case, HypothesisChooser, make_case
from tests.fuzz.runner import Finding, Worker

SHORT_EXAMPLES = 300


@pytest.fixture(scope="module")
def short_run(worker: Worker) -> tuple[int, list[Finding]]:
    findings: list[Finding] = []
    executions = 0

    @settings(max_examples=SHORT_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        nonlocal executions
        found, _ = worker.run(make_case(HypothesisChooser(data)))
        executions += 1
        findings.extend(found)

    fuzz()
    return executions, findings


def _describe(findings: list[Finding]) -> str:
    lines = []
    for f in {f.signature: f for f in findings}.values():
        mutations = "; ".join(f.case.mutations) if f.case else ""
        lines.append(f"{f.signature}\n    {f.detail[:300]}\n    input: {mutations}")
    return "\n".join(lines)


def test_ran_enough_inputs(short_run: tuple[int, list[Finding]]) -> None:
    executions, _ = short_run
    assert executions >= SHORT_EXAMPLES * 0.9


def test_no_unknown_defects(short_run: tuple[int, list[Finding]]) -> None:
    _, findings = short_run
    unknown = [f for f in findings if known.reason_for(f.signature) is None]
    assert not unknown, "load_study mishandled fuzzed inputs:\n" + _describe(unknown)


@pytest.mark.parametrize("pattern", [
    pytest.param(pattern, id=pattern[:60],
                 marks=pytest.mark.xfail(reason=reason, strict=False))
    for pattern, reason in known.KNOWN_DEFECTS.items()
])
def test_known_defect_fixed(short_run: tuple[int, list[Finding]], pattern: str) -> None:
    _, findings = short_run
    hits = [f for f in findings if re.search(pattern, f.signature)]
    assert not hits, _describe(hits)


@pytest.mark.parametrize(("selftest", "kind"), [
    ("raise", "exception"), ("abort", "death"), ("segfault", "death"), ("hang", "timeout"),
    ("alloc", "memory"),
])
def test_harness_catches(tmp_path_factory: pytest.TempPathFactory, selftest: str,
                         kind: str) -> None:
    """The child's misbehaviour becomes a finding of the right kind, and the next input
    runs in a fresh child."""
    worker = Worker(tmp_path_factory.mktemp("selftest"), timeout_s=3.0, memory_mb=1024)
    try:
        findings, _ = worker.run(Case(files={}, good="raster"), selftest=selftest)
        assert [f.kind for f in findings] == [kind]
        findings, result = worker.run(Case(files={}, good="raster"))
        assert findings == [] and result["status"] == "ok"
    finally:
        worker.close()
