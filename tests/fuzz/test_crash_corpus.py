"""Every input the fuzzer once caught mishandling ``load_study`` stays a regression test.

tests/fuzz/corpus/crashes/<class>-<id>/ holds the damaged file(s) and case.json (the
defect class, what the loader did, how the input was made). Each is loaded again beside a
good file in the child worker; it must now load, or fail with a Problem, cleanly. Cases of
a class still being fixed (tests/fuzz/known.py) are xfail until the fix lands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fuzz import known
from tests.fuzz.mutate import Case
from tests.fuzz.runner import Worker

CRASHES = Path(__file__).with_name("corpus") / "crashes"


def _cases() -> list[object]:
    params: list[object] = []
    for folder in sorted(p for p in CRASHES.glob("*") if (p / "case.json").is_file()):
        meta = json.loads((folder / "case.json").read_text())
        reason = known.reason_for(meta["signature"])
        marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
        params.append(pytest.param(folder, id=folder.name, marks=marks))
    return params


def load_case(folder: Path) -> Case:
    meta = json.loads((folder / "case.json").read_text())
    return Case(files={name: (folder / name).read_bytes() for name in meta["files"]},
                good=meta["good"], as_files=meta["as_files"], mutations=meta["mutations"])


@pytest.mark.parametrize("folder", _cases())
def test_crash_input_now_handled(worker: Worker, folder: Path) -> None:
    meta = json.loads((folder / "case.json").read_text())
    findings, _ = worker.run(load_case(folder))
    assert not findings, (
        f"{folder.name} (first seen as: {meta['signature']}) is still mishandled:\n"
        + "\n".join(f"{f.signature}: {f.detail[:300]}" for f in findings))
