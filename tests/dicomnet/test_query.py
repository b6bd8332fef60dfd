"""Query/retrieve against a real Orthanc on loopback, loaded with real DICOM series."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest

from tests.orthanc import Orthanc, orthanc_holding, requires_orthanc, start_orthanc
from workstation.dicomnet.config import NetworkSettings, RemoteNode
from workstation.dicomnet.query import (
    PacsError,
    QueryInputError,
    RetrieveProgress,
    StudyQuery,
    dicom_date_range,
    find_studies,
    get_study,
    retrieve_study,
    search_studies,
)
from workstation.dicomnet.storage import INCOMING, write_instance
from workstation.store.audit import INSTANCES_TRANSFERRED, QUERY, AuditLog
from workstation.store.worklist import Worklist

AE_TITLE = "BRAINTRIAGE"
MOSAIC = "siemens_epi_mosaic_orientation"
# one study in three transfer syntaxes (explicit little endian, JPEG lossless, JPEG 2000)
MOSAIC_FILES = ("axmb/AxAsc36mb2a/jpg1.dcm", "axmb/AxAsc36mb2a/jpg2.dcm",
                "axmb/AxInt36mb/jp2k1.dcm", "axmb/AxInt36mb/jp2k2.dcm")


def study_files(datasets: Path) -> dict[str, list[Path]]:
    """The three studies loaded into the PACS: name -> files."""
    dicom = datasets / "dicom"
    return {
        "mosaic": [dicom / MOSAIC / f for f in MOSAIC_FILES]
        + sorted((dicom / MOSAIC / "ax" / "axint35").iterdir()),
        "siemens": sorted((dicom / "siemens_epi_axial").glob("*/*.dcm")),
        "ge": sorted((dicom / "ge_epi_axial").glob("*.dcm")),
    }


def study_uid(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def pixel_digest(path: Path) -> tuple[str, str, str]:
    """SOP instance UID, transfer syntax and the sha256 of the pixel data as stored."""
    ds = pydicom.dcmread(path)
    return (str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID),
            hashlib.sha256(ds.PixelData).hexdigest())


def orthanc_loaded(datasets: Path, factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[Orthanc, dict[str, list[Path]]]]:
    """A real Orthanc holding the test studies (for a module-scoped fixture)."""
    files = study_files(datasets)
    with orthanc_holding(factory.mktemp("orthanc"), files, AE_TITLE) as server:
        yield server, files


@pytest.fixture(scope="module")
def loaded(datasets: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Orthanc, dict[str, list[Path]]]]:
    yield from orthanc_loaded(datasets, tmp_path_factory)


@pytest.fixture
def pacs(loaded: tuple[Orthanc, dict[str, list[Path]]]) -> RemoteNode:
    server, _ = loaded
    return RemoteNode("testpacs", server.ae_title, server.host, server.dicom_port)


@pytest.fixture
def files(loaded: tuple[Orthanc, dict[str, list[Path]]]) -> dict[str, list[Path]]:
    return loaded[1]


@pytest.fixture
def settings(pacs: RemoteNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> NetworkSettings:
    """Settings with the PACS; the store, worklist and audit log in a temporary folder."""
    monkeypatch.setenv("BRAIN_TRIAGE_DATA_DIR", str(tmp_path / "data"))
    return NetworkSettings(ae_title=AE_TITLE, store_dir=str(tmp_path / "store"), min_free_mb=0,
                           pacs=pacs.name, nodes=(pacs,))


# ---------------------------------------------------------------- the query's fields
@pytest.mark.parametrize(("text", "dicom"), [
    ("", ""), ("20180918", "20180918"), ("2018-09-18", "20180918"),
    ("20180101-20181231", "20180101-20181231"), ("-20150101", "-20150101"),
    ("20150101-", "20150101-"), (" 20180918 ", "20180918")])
def test_dates_are_written_as_dicom_ranges(text: str, dicom: str) -> None:
    assert dicom_date_range(text) == dicom


@pytest.mark.parametrize("text", ["2018", "20181318", "2018-02-30", "20181231-20180101",
                                  "yesterday", "-", "20180101 20180102"])
def test_a_date_that_is_not_one_is_refused_in_words(text: str) -> None:
    with pytest.raises(QueryInputError, match="date"):
        StudyQuery(date=text)


def test_modality_and_text_fields_are_checked() -> None:
    assert StudyQuery(modality=" mr ").modality == "MR"
    with pytest.raises(QueryInputError, match="modality"):
        StudyQuery(modality="M R")
    with pytest.raises(QueryInputError, match="backslash"):
        StudyQuery(patient="A\\B")


def test_a_patient_is_searched_by_name_and_by_id() -> None:
    by_name, by_id = StudyQuery(patient="smith").identifiers()
    assert (by_name.PatientName, by_name.PatientID) == ("*smith*", "")
    assert (by_id.PatientName, by_id.PatientID) == ("", "smith")
    assert StudyQuery(patient="sm?th*").identifiers()[0].PatientName == "sm?th*"
    assert all(i.QueryRetrieveLevel == "STUDY" for i in StudyQuery().identifiers())


# ------------------------------------------------------------------------- C-FIND
@requires_orthanc
def test_find_lists_every_study_as_sent(pacs: RemoteNode, files: dict[str, list[Path]]
                                        ) -> None:
    found = {m.study_uid: m for m in find_studies(pacs, StudyQuery(), calling_ae=AE_TITLE)}
    assert set(found) == {study_uid(f) for f in files.values()}
    for paths in files.values():
        sent = pydicom.dcmread(paths[0], stop_before_pixels=True)
        match = found[sent.StudyInstanceUID]
        assert match.patient_id == sent.PatientID
        assert match.patient_name == " ".join(str(sent.PatientName).split("^"))
        assert match.study_date == sent.StudyDate
        assert match.description == str(sent.get("StudyDescription", ""))
        assert match.modalities == ("MR",)
        assert match.instance_count == len(paths)
        assert match.series_count == len({pydicom.dcmread(p, stop_before_pixels=True)
                                          .SeriesInstanceUID for p in paths})
    dates = [m.study_date for m in find_studies(pacs, StudyQuery(), calling_ae=AE_TITLE)]
    assert dates == sorted(dates, reverse=True)  # newest first


@requires_orthanc
@pytest.mark.parametrize(("query", "expected"), [
    (StudyQuery(patient="stc"), {"mosaic"}),  # part of the name
    (StudyQuery(patient="regression"), {"siemens", "ge"}),  # names match whatever the case
    (StudyQuery(patient="DEV"), {"siemens", "ge"}),  # the patient ID
    (StudyQuery(patient="crlab"), {"mosaic"}),
    (StudyQuery(patient="nobody"), set()),
    (StudyQuery(date="2014-03-10"), {"mosaic"}),
    (StudyQuery(date="20180101-20181231"), {"siemens", "ge"}),
    (StudyQuery(date="-20150101"), {"mosaic"}),
    (StudyQuery(modality="mr"), {"mosaic", "siemens", "ge"}),
    (StudyQuery(modality="CT"), set()),
    (StudyQuery(description="mcbi"), {"mosaic"}),
    (StudyQuery(description="fmrif*qa"), {"siemens"}),
    (StudyQuery(patient="test", description="QA"), {"siemens"}),
])
def test_find_filters_on_patient_date_modality_description(
        pacs: RemoteNode, files: dict[str, list[Path]], query: StudyQuery,
        expected: set[str]) -> None:
    found = {m.study_uid for m in find_studies(pacs, query, calling_ae=AE_TITLE)}
    assert found == {study_uid(files[name]) for name in expected}


@requires_orthanc
def test_a_caller_the_pacs_does_not_know_is_told_why(pacs: RemoteNode) -> None:
    with pytest.raises(PacsError, match=r"'STRANGER'.*allowed to query"):
        find_studies(pacs, StudyQuery(), calling_ae="STRANGER")


@requires_orthanc
def test_a_wrong_called_ae_title_is_refused_in_words(pacs: RemoteNode) -> None:
    with pytest.raises(PacsError, match=r"refused the connection.*'NOTORTHANC'"):
        find_studies(replace(pacs, ae_title="NOTORTHANC"), StudyQuery(), calling_ae=AE_TITLE)


def test_a_pacs_that_does_not_answer_is_named_with_its_address() -> None:
    from tests.orthanc import free_port

    port = free_port()
    node = RemoteNode("nowhere", "PACS", "127.0.0.1", port)
    with pytest.raises(PacsError, match=rf"did not answer at 127\.0\.0\.1:{port} \(nowhere\)"):
        find_studies(node, StudyQuery(), calling_ae=AE_TITLE, timeout=5)


@requires_orthanc
def test_search_is_audited_without_the_query(settings: NetworkSettings, tmp_path: Path) -> None:
    found = search_studies(settings, StudyQuery(patient="stc"))
    assert len(found) == 1
    events = list(AuditLog(tmp_path / "data" / "audit.sqlite").events())
    assert [(e.event, e.outcome) for e in events] == [(QUERY, "success")]
    assert "stc" not in events[0].detail and "testpacs" in events[0].detail


# -------------------------------------------------------------------------- C-GET
@requires_orthanc
def test_retrieved_files_equal_the_sent_ones(settings: NetworkSettings, files: dict[
        str, list[Path]], tmp_path: Path) -> None:
    sent = files["mosaic"]
    progress: list[RetrieveProgress] = []
    result = retrieve_study(settings, study_uid(sent), progress=progress.append)
    assert result.complete and result.received == len(sent) and not result.problems
    assert result.folder is not None and result.folder.parent == settings.store_path()
    stored = sorted(result.folder.rglob("*.dcm"))
    # each file as sent: same transfer syntax (JPEG, JPEG 2000 kept, not transcoded) and
    # the same pixel bytes
    assert {pixel_digest(p) for p in stored} == {pixel_digest(p) for p in sent}
    assert len({pixel_digest(p)[1] for p in stored}) == 3
    assert [p.received for p in progress] == sorted(p.received for p in progress)
    assert progress[-1] == RetrieveProgress(len(sent), len(sent), 0)
    assert not list((settings.store_path() / INCOMING).glob("*.part"))
    with Worklist(tmp_path / "data" / "worklist.sqlite") as worklist:
        row = worklist.study(study_uid(sent))
    assert row is not None
    assert (row.patient_id, row.instance_count, row.series_count) == ("crlab", 6, 3)
    assert row.folder == result.folder
    events = list(AuditLog(tmp_path / "data" / "audit.sqlite").events())
    assert [(e.event, e.outcome, e.study_uid) for e in events] == [
        (INSTANCES_TRANSFERRED, "success", study_uid(sent))]


@requires_orthanc
def test_retrieving_again_keeps_one_copy(settings: NetworkSettings,
                                         files: dict[str, list[Path]]) -> None:
    uid = study_uid(files["siemens"])
    first = retrieve_study(settings, uid)
    again = retrieve_study(settings, uid)
    assert first.complete and again.complete
    assert len(list(settings.store_path().rglob("*.dcm"))) == len(files["siemens"])


@requires_orthanc
def test_a_retrieval_can_be_cancelled(pacs: RemoteNode, files: dict[str, list[Path]],
                                      tmp_path: Path) -> None:
    store = tmp_path / "store"
    sent = files["ge"]
    seen: list[RetrieveProgress] = []
    result = get_study(pacs, study_uid(sent), lambda ds: write_instance(store, ds),
                       calling_ae=AE_TITLE, progress=seen.append,
                       cancelled=lambda: bool(seen) and seen[-1].received >= 5)
    assert result.cancelled and not result.complete
    assert 5 <= result.received < len(sent)
    assert seen[0].total == len(sent)
    stored = list(store.rglob("*.dcm"))
    assert len(stored) == result.received  # each whole and readable
    by_uid = {pixel_digest(p)[0]: pixel_digest(p) for p in sent}
    assert all(pixel_digest(p) == by_uid[pixel_digest(p)[0]] for p in stored)


@requires_orthanc
def test_a_retrieval_cancelled_before_it_starts_stops_early(
        pacs: RemoteNode, files: dict[str, list[Path]], tmp_path: Path) -> None:
    sent = files["ge"]
    result = get_study(pacs, study_uid(sent), lambda ds: write_instance(tmp_path, ds),
                       calling_ae=AE_TITLE, cancelled=lambda: True)
    assert result.cancelled and result.received < len(sent) // 2


@requires_orthanc
def test_a_full_store_stops_the_retrieval_with_a_reason(settings: NetworkSettings,
                                                        files: dict[str, list[Path]]) -> None:
    full = replace(settings, min_free_mb=10**9)  # no disk has a petabyte free
    result = retrieve_study(full, study_uid(files["ge"]))
    assert result.received == 0 and result.failed >= 1 and not result.complete
    assert any("disk" in p for p in result.problems)
    assert not list(full.store_path().rglob("*.dcm"))


@requires_orthanc
def test_a_study_the_pacs_does_not_hold_is_said_so(pacs: RemoteNode, tmp_path: Path) -> None:
    with pytest.raises(PacsError, match=r"sent nothing for study 1\.2\.3\.4"):
        get_study(pacs, "1.2.3.4", lambda ds: write_instance(tmp_path, ds), calling_ae=AE_TITLE)


@requires_orthanc
def test_a_pacs_that_stopped_is_said_so(tmp_path: Path) -> None:
    server = start_orthanc(tmp_path / "orthanc", {"workstation": (AE_TITLE, "127.0.0.1", 1)})
    node = RemoteNode("stopped", server.ae_title, server.host, server.dicom_port)
    assert find_studies(node, StudyQuery(), calling_ae=AE_TITLE) == []
    server.stop()
    with pytest.raises(PacsError, match="did not answer"):
        find_studies(node, StudyQuery(), calling_ae=AE_TITLE, timeout=5)
    server.start()  # the same storage and ports again
    try:
        assert find_studies(node, StudyQuery(), calling_ae=AE_TITLE) == []
    finally:
        server.stop()
