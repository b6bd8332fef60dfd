"""A receiver on a loopback port with its store, worklist and audit log in a temporary
folder; DCMTK's command-line tools when installed."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from tests.dicom_factory import mr_dataset
from workstation.dicomnet.config import NetworkSettings
from workstation.dicomnet.load_test import free_port
from workstation.dicomnet.receiver import Receiver
from workstation.store.worklist import Worklist

needs_dcmtk = pytest.mark.skipif(
    shutil.which("storescu") is None or shutil.which("echoscu") is None,
    reason="DCMTK's storescu/echoscu are not installed (Debian package dcmtk)")

StartReceiver = Callable[..., Receiver]


@pytest.fixture
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def start_receiver(data_folder: Path) -> Iterator[StartReceiver]:
    """``start_receiver(**settings)``: a started Receiver on a free loopback port; its
    worklist is ``receiver.worklist``, its store ``data_folder/store``."""
    started: list[Receiver] = []

    def start(store: Path | None = None, **settings: object) -> Receiver:
        values: dict[str, object] = {"bind_address": "127.0.0.1", "port": free_port(),
                                     "min_free_mb": 0}
        values.update(settings)
        receiver = Receiver(NetworkSettings(**values),  # type: ignore[arg-type]
                            Worklist(data_folder / "worklist.sqlite"),
                            store_root=store or data_folder / "store")
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
        receiver.worklist.close()


def instance(study_uid: str | None = None, series_uid: str | None = None,
             size: int = 32, number: int = 1) -> Dataset:
    """A small MR instance with fresh UIDs (unless given)."""
    pixels = (np.arange(size * size, dtype=np.uint16).reshape(size, size) + number) % 4000
    ds = mr_dataset(pixels, series_uid=series_uid or generate_uid(), instance=number,
                    position=(0.0, 0.0, float(number)))
    ds.StudyInstanceUID = study_uid or generate_uid()
    return ds


def stored_files(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*.dcm") if ".incoming" not in p.parts)


@pytest.fixture
def ge_files(datasets: Path) -> list[Path]:
    """The real GE EPI series (150 single-slice files)."""
    return sorted((datasets / "dicom" / "ge_epi_axial").glob("*.dcm"))
