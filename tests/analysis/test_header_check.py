"""header_check.metadata_problem: what the DICOM header alone refuses (Modality, Body Part Examined,
descriptions and protocol naming another body region), and that it never refuses a brain."""

from __future__ import annotations

from pathlib import Path

import pytest

from workstation.analysis.findings import ReasonKind
from workstation.analysis.header_check import metadata_problem
from workstation.imaging import Series, SeriesInfo, load_study


def header(**info: str | None) -> Series:
    """A series with no slices: metadata_problem reads only the header."""
    return Series(source="s", series_uid="1.2", slices=(),
                  info=SeriesInfo(**{"modality": "MR", **info}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "region"), [
    ("SAG T2 LUMBAR", "the spine"), ("L_SPINE", "the spine"), ("t2_tse_sag_L-Spine", "the spine"),
    ("C-SPINE SAG T1", "the spine"), ("cspine_stir", "the spine"), ("T.SPINE", "the spine"),
    ("MRI cervical spine", "the spine"), ("sag t2 thoracic", "the spine"),
    ("SACRUM COR STIR", "the spine"),
    ("t2_tse_sag_knee", "the knee"), ("KNEES BILAT", "the knee"),
    ("Shoulder^Routine", "the shoulder"),
    ("PD FS COR HIP", "the hip"), ("hips", "the hip"), ("ankle_pd_sag", "the ankle"),
    ("FOOT LEFT", "the foot"), ("feet", "the foot"), ("wrist-cor-t1", "the wrist"),
    ("HAND R", "the hand"), ("elbow", "the elbow"), ("ARM LEFT", "the arm"),
    ("FEMUR COR", "the leg"), ("legs stir", "the leg"),
    ("MR ABDOMEN", "the abdomen"), ("abdominal_t2_haste", "the abdomen"),
    ("LIVER DYN", "the abdomen"), ("Pancreas", "the abdomen"), ("kidneys cor", "the abdomen"),
    ("RENAL MRA", "the abdomen"), ("MRCP 3D", "the abdomen"),
    ("PELVIS AX T2", "the pelvis"), ("prostate_dwi", "the pelvis"), ("UTERUS SAG", "the pelvis"),
    ("BREAST DYN", "the breast"), ("cardiac cine sax", "the heart"), ("HEART 4CH", "the heart"),
    ("CHEST", "the chest"), ("thorax_haste", "the chest"),
])
@pytest.mark.parametrize("field", ["series_description", "protocol_name", "study_description"])
def test_a_description_naming_another_region_is_refused(text: str, region: str, field: str
                                                        ) -> None:
    reason = metadata_problem(header(**{field: text}))
    assert reason is not None and reason.kind is ReasonKind.BODY_PART
    name = field.replace("_", " ")
    assert reason.text == f"{name} '{text}' names {region}, not the brain"


def test_the_reason_reads_plainly() -> None:
    reason = metadata_problem(header(series_description="SAG T2 LUMBAR"))
    assert reason is not None
    assert reason.text == "series description 'SAG T2 LUMBAR' names the spine, not the brain"


@pytest.mark.parametrize("head", [
    "MRI BRAIN", "Head^Routine", "brain + C-spine", "NEURO", "CEREBRUM", "cerebral perfusion",
    "Intracranial MRA", "cranial nerves", "PITUITARY", "sella cor t1", "IAC", "ORBITS",
    "Kopf", "SCHÄDEL", "Schaedel", "cerveau", "cabeza", "CEREBRO", "cerebellum",
    "ep2d_bold_hand_motor", "fMRI foot tapping", "t1_mprage_sag",
])
def test_a_field_naming_the_head_keeps_the_descriptions_from_refusing(head: str) -> None:
    for field in ("series_description", "protocol_name", "study_description"):
        others = {f: "SAG T2 C-SPINE" for f in ("series_description", "protocol_name",
                                                "study_description") if f != field}
        assert metadata_problem(header(**{field: head}, **others)) is None, (field, head)


def test_a_brain_body_part_keeps_the_descriptions_from_refusing() -> None:
    assert metadata_problem(header(body_part_examined="HEAD",
                                   series_description="SAG T2 LUMBAR")) is None


@pytest.mark.parametrize("text", [
    "T1 axial", "ax_asc_35sl", "Research^MCBI_TESTING", "EPI PE=AP", "FM_cv12_0_3mm",
    "ABCD_RX28 32ch HB 7/9/21", "WIP fcMRI Field Mapping", "anat-T1w_acq-tfl",
    "SAG_DTI_PA-ortho", "DCM2NIIX regression test", "FLAIR AX", "hippocampus cor t2",
    "PC CSF flow cardiac gated", "DTI cardiac-triggered", "AX T2 FEMORAL HEAD AVN",
    "handedness", "shipment", "armature", "legacy", "", None,
])
def test_brain_and_neutral_descriptions_are_not_refused(text: str | None) -> None:
    series = header(series_description=text, protocol_name=text, study_description=text)
    reason = metadata_problem(series)
    if text == "AX T2 FEMORAL HEAD AVN":  # a hip: "head" does not save it
        assert reason is not None and "names the leg" in reason.text
    else:
        assert reason is None, reason


def test_an_empty_header_is_not_refused() -> None:
    assert metadata_problem(header()) is None
    assert metadata_problem(header(modality=None)) is None


@pytest.mark.parametrize(("info", "kind", "words"), [
    ({"modality": "CT", "body_part_examined": "HEAD"}, ReasonKind.NOT_MR, "modality CT"),
    ({"modality": "US"}, ReasonKind.NOT_MR, "modality US"),
    ({"body_part_examined": "ABDOMEN"}, ReasonKind.BODY_PART, "body part 'ABDOMEN'"),
    ({"body_part_examined": "LSPINE", "study_description": "MRI brain"},
     ReasonKind.BODY_PART, "body part 'LSPINE' is not the brain"),
])
def test_modality_and_body_part_still_decide_first(info: dict[str, str], kind: ReasonKind,
                                                   words: str) -> None:
    reason = metadata_problem(header(**info))
    assert reason is not None and reason.kind is kind and words in reason.text


@pytest.mark.parametrize("body_part", ["BRAIN", "HEAD", "Head Neck", "SKULL", "NEURO"])
def test_brain_body_parts_pass(body_part: str) -> None:
    assert metadata_problem(header(body_part_examined=body_part)) is None


def test_every_real_brain_series_passes_the_header_check(datasets: Path) -> None:
    study = load_study([datasets / "dicom", datasets / "normal" / "dicom"])
    assert len(study.series) >= 30
    refused = {s.source: metadata_problem(s) for s in study.series}
    assert not {k: v for k, v in refused.items() if v is not None}
    assert any(s.info.protocol_name == "WIP fcMRI Field Mapping" for s in study.series)
