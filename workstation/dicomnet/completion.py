"""Study completion and automatic triage.

A study is complete once no new instance of it has arrived for the stable age (Orthanc's
"StableAge"; 30 s by default), whichever associations brought its instances; it is then
queued and analysed on one worker thread, so the receiver keeps serving associations. An
instance arriving later sends the study back to receiving, and it is analysed again once
quiet. After a restart, analyses that were under way are queued again.

The analysis itself is handed in (``analyse``: study folder -> ``TriageOutcome``), so this
module needs neither torch nor the model; ``workstation serve`` gives it the triage
pipeline with one engine loaded once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstation.store.worklist import Claim, Worklist

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriageOutcome:
    verdict: str  # the study's verdict: its most urgent series verdict
    headline: str
    reasons: Sequence[str]
    document: dict[str, Any] = field(default_factory=dict)  # workstation triage --json


Analyse = Callable[[Path], TriageOutcome]


class StudyCompletion:
    """Watches the worklist's quiet-time clocks and analyses complete studies in turn."""

    def __init__(self, worklist: Worklist, analyse: Analyse, stable_age_s: float = 30.0,
                 on_change: Callable[[str], None] | None = None,
                 idle_s: float = 1.0) -> None:
        self.worklist = worklist
        self.analyse = analyse
        self.stable_age_s = float(stable_age_s)
        self.on_change = on_change
        self.idle_s = idle_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        resumed = self.worklist.resume_unfinished()
        if resumed:
            LOG.info("%d unfinished analyses queued again", resumed)
        self._thread = threading.Thread(target=self._run, name="study-completion",
                                        daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """An instance arrived: look at the clocks again."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the analysis under way, if any (waiting at most ``timeout``; an
        analysis cut short is queued again at the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self, now: float | None = None) -> str | None:
        """Queue the studies that have become quiet, then analyse the next one queued.
        Returns its UID, or None when nothing was waiting."""
        for uid in self.worklist.complete_quiet(self.stable_age_s, now):
            self._changed(uid)
        claim = self.worklist.claim_next()
        if claim is None:
            return None
        self._changed(claim.study_uid)
        self._analyse(claim)
        self._changed(claim.study_uid)
        return claim.study_uid

    def _analyse(self, claim: Claim) -> None:
        try:
            outcome = self.analyse(claim.folder)
        except Exception as exc:  # one study's failure must not stop the queue
            LOG.exception("analysis of study %s failed", claim.study_uid)
            self.worklist.fail(claim, f"the analysis failed: {exc}")
            return
        self.worklist.finish(claim, outcome.verdict, outcome.headline, outcome.reasons,
                             outcome.document)

    def _changed(self, uid: str) -> None:
        if self.on_change is not None:
            self.on_change(uid)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step() is not None:
                    continue
                wait = self.worklist.seconds_to_next_completion(self.stable_age_s)
            except Exception:  # the database was busy or went away: try again shortly
                LOG.exception("the worklist could not be read")
                wait = self.idle_s
            self._wake.wait(self.idle_s if wait is None else min(wait + 0.05, self.idle_s))
            self._wake.clear()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
