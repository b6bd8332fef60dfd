"""The TID 1500 structured report: verdict, class, probabilities, reasons, key images,
algorithm and the reader's reading, read back from the written file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset

from tests.reporting.dicom_cases import GE, triaged
from workstation.reporting.content import key_images
from workstation.reporting.dicom_export import write_dataset
from workstation.reporting.dicom_sr import SCHEME, build_structured_report
from workstation.store.readings import Reading, series_key


def items(node: Dataset) -> Iterator[Dataset]:
    for item in node.get("ContentSequence", []):
        yield item
        yield from items(item)


def concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return code.CodingSchemeDesignator, code.CodeValue


def coded(root: Dataset, scheme: str, value: str) -> list[tuple[str, str]]:
    return [(i.ConceptCodeSequence[0].CodingSchemeDesignator,
             i.ConceptCodeSequence[0].CodeValue)
            for i in items(root) if i.ValueType == "CODE" and concept(i) == (scheme, value)]


def numbers(root: Dataset, value: str) -> list[float]:
    return [float(i.MeasuredValueSequence[0].NumericValue) for i in items(root)
            if i.ValueType == "NUM" and concept(i) == (SCHEME, value)]


def texts(root: Dataset, scheme: str, value: str) -> list[str]:
    return [str(i.TextValue) for i in items(root)
            if i.ValueType == "TEXT" and concept(i) == (scheme, value)]


def test_report_holds_the_verdict_class_probabilities_and_algorithm(datasets: Path,
                                                                    tmp_path: Path) -> None:
    result = triaged(datasets, GE, tumour=[5, 6, 7])
    verdict = result.verdicts[0]
    sr = pydicom.dcmread(write_dataset(build_structured_report(result, {}), tmp_path / "sr.dcm"))
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == SCHEME
    assert verdict.verdict.value == "tumour" and verdict.predicted_class == "glioma"
    verdicts = coded(sr, SCHEME, "BRT001")
    assert verdicts[0] == (SCHEME, "BRT010")  # series: tumour suspected
    assert coded(sr, "SCT", "108369006") == [("SCT", "52101004")]  # neoplasm: present
    assert coded(sr, SCHEME, "BRT002") == [(SCHEME, "BRT020")]  # glioma
    assert numbers(sr, "BRT004") == [round(verdict.confidence, 4)]
    assert numbers(sr, "BRT006") == [round(verdict.class_probability, 4)]
    names = [str(i.TextValue) for i in items(sr) if concept(i) == ("DCM", "111001")]
    versions = [str(i.TextValue) for i in items(sr) if concept(i) == ("DCM", "111003")]
    parameters = [str(i.TextValue) for i in items(sr) if concept(i) == ("DCM", "111002")]
    assert set(names) == {result.model.name} and set(versions) == {result.model.version}
    assert set(parameters) == {f"sha256={result.model.sha256}"}
    comments = texts(sr, "DCM", "121106")
    assert comments[0].startswith(verdict.headline)
    assert "decision support, not a diagnosis" in comments[0]


def test_key_images_are_referenced_with_their_tumour_probability(datasets: Path,
                                                                 tmp_path: Path) -> None:
    result = triaged(datasets, GE, tumour=[5, 6, 7])
    verdict = result.verdicts[0]
    chosen, _ = key_images(verdict)
    expected = {pydicom.dcmread(verdict.series.slices[f.index].source,
                                stop_before_pixels=True).SOPInstanceUID for f in chosen}
    sr = hd.sr.srread(write_dataset(build_structured_report(result, {}), tmp_path / "sr.dcm"))
    referenced = {str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
                  for i in items(sr) if i.ValueType == "IMAGE"}
    assert referenced == expected
    evidence = {str(s.ReferencedSOPInstanceUID)
                for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence
                for s in series.ReferencedSOPSequence}
    assert evidence == expected
    assert sorted(numbers(sr, "BRT005")) == sorted(round(f.tumour_probability, 4)
                                                   for f in chosen if f.peak is not None)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == len([f for f in chosen if f.peak is not None])


def test_review_reasons_are_coded_and_said_in_words(datasets: Path, tmp_path: Path) -> None:
    result = triaged(datasets, GE, tumour=[], unsure=[3, 9])
    verdict = result.verdicts[0]
    assert verdict.reason_kinds, "the stand-in engine was meant to give a reason"
    sr = pydicom.dcmread(write_dataset(build_structured_report(result, {}), tmp_path / "sr.dcm"))
    assert verdict.verdict.value == "review"
    assert coded(sr, SCHEME, "BRT001")[0] == (SCHEME, "BRT012")  # needs human review
    assert coded(sr, "SCT", "108369006") == [("SCT", "82334004")]  # neoplasm: indeterminate
    assert len(coded(sr, SCHEME, "BRT003")) == len(verdict.reason_kinds)
    comments = texts(sr, "DCM", "121106")
    for reason in verdict.reasons:
        assert f"Review reason: {reason.text}" in comments


def test_the_readers_reading_is_in_the_report(datasets: Path, tmp_path: Path) -> None:
    result = triaged(datasets, GE, tumour=[5, 6, 7])
    series = result.verdicts[0].series
    reading = Reading.now(series_key(series), "disagree", "meningioma",
                          note="dural tail on image 7", reader="Grey^Meredith")
    report = build_structured_report(result, {series_key(series): reading})
    sr = pydicom.dcmread(write_dataset(report, tmp_path / "sr.dcm"))
    assert coded(sr, SCHEME, "BRT007") == [(SCHEME, "BRT031")]  # disagrees
    assert coded(sr, SCHEME, "BRT008") == [(SCHEME, "BRT021")]  # meningioma
    assert any("dural tail on image 7" in t for t in texts(sr, "DCM", "121106"))
    people = [str(i.PersonName) for i in items(sr) if i.ValueType == "PNAME"]
    assert people == ["Grey^Meredith"]


def test_every_reason_kind_has_its_own_private_code() -> None:
    from workstation.analysis.findings import ReasonKind
    from workstation.reporting.dicom_sr import REASON_CODES

    assert set(REASON_CODES) == set(ReasonKind)
    assert len({c.value for c in REASON_CODES.values()}) == len(ReasonKind)
