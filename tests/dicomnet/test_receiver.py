"""The receiver on a real loopback socket, with DCMTK's echoscu/storescu and pynetdicom's
SCU as senders."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pynetdicom import AE

from tests.dicomnet.conftest import StartReceiver, instance, needs_dcmtk, stored_files
from workstation.dicomnet.config import NetworkSettings
from workstation.dicomnet.receiver import OUT_OF_RESOURCES, Receiver, server_ssl_context
from workstation.dicomnet.storage import INCOMING
from workstation.store.audit import INSTANCES_RECEIVED, NODE_REJECTED, AuditLog
from workstation.store.worklist import Worklist

VERIFICATION = "1.2.840.10008.1.1"


def scu(port: int, datasets: Sequence[Dataset] = (), calling: str = "SCANNER",
        tls: tuple[ssl.SSLContext, str] | None = None) -> list[int]:
    """Send ``datasets`` over one association; the statuses (empty when refused)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="BRAINTRIAGE", tls_args=tls)
    if not assoc.is_established:
        return []
    statuses = [int(assoc.send_c_echo().Status)]
    statuses += [int(assoc.send_c_store(ds).Status) for ds in datasets]
    assoc.release()
    return statuses


def dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


@needs_dcmtk
def test_dcmtk_echo_and_store_of_a_real_series(start_receiver: StartReceiver,
                                               ge_files: list[Path]) -> None:
    receiver = start_receiver(allowed_callers=("SCANNER",))
    port = str(receiver.port)
    echo = dcmtk("echoscu", "-aet", "SCANNER", "-aec", "BRAINTRIAGE", "127.0.0.1", port)
    assert echo.returncode == 0, echo.stderr
    sent = dcmtk("storescu", "-aet", "SCANNER", "-aec", "BRAINTRIAGE", "127.0.0.1", port,
                 *map(str, ge_files[:12]))
    assert sent.returncode == 0, sent.stderr
    stored = stored_files(receiver.store_root)
    assert len(stored) == 12
    originals = {pydicom.dcmread(p).SOPInstanceUID: p for p in ge_files[:12]}
    for path in stored:
        back = pydicom.dcmread(path)
        original = pydicom.dcmread(originals[back.SOPInstanceUID])
        assert bytes(back.PixelData) == bytes(original.PixelData)
        assert path.parent.name == original.SeriesInstanceUID
    (row,) = receiver.worklist.studies()
    assert (row.instance_count, row.series_count, row.state) == (12, 1, "receiving")
    assert row.patient_name == str(pydicom.dcmread(ge_files[0]).PatientName)
    with AuditLog() as log:
        received = [e for e in log.events() if e.event == INSTANCES_RECEIVED]
    assert received and received[0].study_uid == row.study_uid
    assert "12 instances from SCANNER" in received[0].detail


def test_pynetdicom_store_duplicates_are_idempotent(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    study = instance().StudyInstanceUID
    datasets = [instance(study_uid=study, number=k) for k in range(3)]
    assert scu(receiver.port, datasets) == [0, 0, 0, 0]
    assert scu(receiver.port, datasets[:2]) == [0, 0, 0]  # sent again: Success, stored once
    assert len(stored_files(receiver.store_root)) == 3
    (row,) = receiver.worklist.studies()
    assert (row.instance_count, row.series_count) == (3, 3)


@needs_dcmtk
def test_a_calling_ae_not_on_the_allow_list_is_rejected(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(allowed_callers=("SCANNER",))
    refused = dcmtk("echoscu", "-aet", "INTRUDER", "-aec", "BRAINTRIAGE", "127.0.0.1",
                    str(receiver.port))
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr + refused.stdout
    assert scu(receiver.port, [instance()], calling="INTRUDER") == []
    assert stored_files(receiver.store_root) == []
    with AuditLog() as log:
        rejected = [e for e in log.events() if e.event == NODE_REJECTED]
    assert any("INTRUDER at 127.0.0.1" in e.detail for e in rejected)


def test_a_host_not_on_the_allow_list_is_rejected(start_receiver: StartReceiver) -> None:
    elsewhere = start_receiver(allowed_hosts=("192.0.2.7",))
    assert scu(elsewhere.port, [instance()]) == []
    assert stored_files(elsewhere.store_root) == []
    here = start_receiver(store=elsewhere.store_root.parent / "store2",
                          allowed_hosts=("localhost",))
    assert scu(here.port, [instance()]) == [0, 0]


def test_maximum_associations(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(max_associations=1)
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(VERIFICATION)
    first = ae.associate("127.0.0.1", receiver.port)
    try:
        assert first.is_established
        second = ae.associate("127.0.0.1", receiver.port)
        assert second.is_rejected
    finally:
        first.release()
    assert scu(receiver.port) == [0]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_a_crafted_uid_sent_over_the_network_stays_in_the_store(
        start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    crafted = instance()
    crafted.StudyInstanceUID = "../../../../tmp/escaped"
    crafted.SOPInstanceUID = "../../outside"
    assert scu(receiver.port, [crafted]) == [0, 0]
    (path,) = stored_files(receiver.store_root)
    assert path.resolve().is_relative_to(receiver.store_root.resolve())
    everything = list(receiver.store_root.parent.parent.rglob("*"))
    assert [p for p in everything if p.suffix == ".dcm"] == [path]
    assert not any("escaped" in str(p) or "outside" in str(p) for p in everything)
    assert not Path("/tmp/escaped").exists()


def test_below_the_free_space_threshold_out_of_resources(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(min_free_mb=2**40)
    assert scu(receiver.port, [instance()]) == [0, OUT_OF_RESOURCES]
    assert stored_files(receiver.store_root) == []
    assert receiver.worklist.studies() == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root and mount permission; skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_gives_a_failure_status_and_no_corrupt_file(
        start_receiver: StartReceiver, small_disk: Path) -> None:
    receiver = start_receiver(store=small_disk / "store", min_free_mb=0)
    study = instance().StudyInstanceUID
    big = [instance(study_uid=study, size=256, number=k) for k in range(20)]  # 128 kB each
    statuses = scu(receiver.port, big)[1:]
    assert OUT_OF_RESOURCES in statuses
    first_failure = statuses.index(OUT_OF_RESOURCES)
    assert first_failure >= 3 and set(statuses[:first_failure]) == {0}
    stored = stored_files(receiver.store_root)
    acknowledged = {big[k].SOPInstanceUID for k, s in enumerate(statuses) if s == 0}
    assert {pydicom.dcmread(p).SOPInstanceUID for p in stored} == acknowledged
    for path in stored:  # every file whole
        back = pydicom.dcmread(path)
        assert bytes(back.PixelData) == bytes(next(
            d for d in big if d.SOPInstanceUID == back.SOPInstanceUID).PixelData)
    assert list((receiver.store_root / INCOMING).iterdir()) == []
    (row,) = receiver.worklist.studies()
    assert row.instance_count == len(acknowledged)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True)
    return cert, key


def test_dicom_over_tls(data_folder: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    from workstation.dicomnet.load_test import free_port

    settings = NetworkSettings(bind_address="127.0.0.1", port=free_port(), min_free_mb=0,
                               tls_certificate=str(cert), tls_key=str(key))
    context = server_ssl_context(settings)
    assert context is not None
    receiver = Receiver(settings, Worklist(data_folder / "worklist.sqlite"),
                        store_root=data_folder / "store", ssl_context=context)
    receiver.start()
    try:
        client = ssl.create_default_context(cafile=str(cert))
        assert scu(receiver.port, [instance()], tls=(client, "localhost")) == [0, 0]
        assert scu(receiver.port, [instance()]) == []  # plain TCP is not understood
        if shutil.which("echoscu"):
            echo = dcmtk("echoscu", "+tla", "+cf", str(cert), "127.0.0.1", str(receiver.port))
            assert echo.returncode == 0, echo.stderr
    finally:
        receiver.stop()
        receiver.worklist.close()
    assert len(stored_files(data_folder / "store")) == 1
