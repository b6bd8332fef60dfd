"""Defect classes the fuzzer finds that are known and being fixed.

Each pattern (a regular expression over a finding's signature) names a defect another
engineer is fixing; the short fuzz test and the crash-corpus test mark these ``xfail``
(strict=False) and fail on anything else. Remove an entry once its fix has landed.
"""

from __future__ import annotations

import re

KNOWN_DEFECTS: dict[str, str] = {
    # every class found at 92e3137 (make fuzz, 15 min; tests/fuzz/corpus/crashes/) is fixed:
    # the guarded per-file boundary and bounds (imaging/guard.py, bounds.py), the decoder
    # worker pool (imaging/isolated.py), the blank-display warning and the clamped VOI LUT
}


def reason_for(signature: str) -> str | None:
    for pattern, reason in KNOWN_DEFECTS.items():
        if re.search(pattern, signature):
            return reason
    return None
