"""kill -9 of ``workstation serve`` in the middle of an association, and a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pydicom
from pynetdicom import AE

from tests.dicomnet.conftest import instance, stored_files
from workstation.dicomnet.completion import wait_until
from workstation.dicomnet.load_test import ServeProcess, free_port, send
from workstation.dicomnet.receiver import no_delay
from workstation.dicomnet.storage import INCOMING

MR = "1.2.840.10008.5.1.4.1.1.4"


def test_kill_9_mid_association_loses_nothing_acknowledged(tmp_path: Path) -> None:
    study = instance().StudyInstanceUID
    series = instance().SeriesInstanceUID
    datasets = [instance(study, series, size=256, number=k) for k in range(60)]  # 128 kB
    by_uid = {d.SOPInstanceUID: d for d in datasets}
    port = free_port()
    serve = ServeProcess(tmp_path, port, "--stable-age", "3600")
    acknowledged: list[str] = []
    killed = threading.Event()

    def kill_after_ten() -> None:
        wait_until(lambda: len(acknowledged) >= 10, 30, interval=0.005)
        serve.kill()
        killed.set()

    killer = threading.Thread(target=kill_after_ten)
    killer.start()
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(MR)
    assoc = ae.associate("127.0.0.1", port)
    assert assoc.is_established
    no_delay(assoc)
    for ds in datasets:
        if not assoc.is_established:
            break
        answer = assoc.send_c_store(ds)
        if not answer or answer.Status != 0:
            break
        acknowledged.append(ds.SOPInstanceUID)
    killer.join()
    assoc.abort()
    assert killed.is_set() and 10 <= len(acknowledged) < len(datasets)

    # after the kill: every acknowledged instance is there, and every file is whole
    stored = {pydicom.dcmread(p).SOPInstanceUID: p for p in stored_files(serve.store)}
    assert set(acknowledged) <= set(stored)
    for uid, path in stored.items():
        assert bytes(pydicom.dcmread(path).PixelData) == bytes(by_uid[uid].PixelData)

    # restart on the same store: partial files gone, the sender's re-send completes it
    again = ServeProcess(tmp_path, free_port(), "--stable-age", "3600")
    try:
        assert list((again.store / INCOMING).iterdir()) == []
        result = send(datasets, again.port, associations=1, calling_ae="SCANNER")
        assert set(result.statuses.values()) == {0}
        with again.worklist() as worklist:
            (row,) = worklist.studies()
        assert (row.study_uid, row.instance_count, row.state) == (study, 60, "receiving")
    finally:
        again.stop()
    assert len(stored_files(again.store)) == 60
