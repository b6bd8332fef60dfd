"""What the DICOM header alone says is not a brain MRI (no pixels, no torch here).

The Modality (not MR), the Body Part Examined (not a brain value), and a Study or Series
Description or Protocol Name that names another body region while no field names the head.
Refusing a brain is a failure too: any head word, or a brain Body Part Examined, keeps the
descriptions from refusing.
"""

from __future__ import annotations

import re

from workstation.analysis.findings import Reason, ReasonKind
from workstation.imaging.series import Series

BRAIN_BODY_PARTS = frozenset({"BRAIN", "HEAD", "SKULL", "HEADNECK", "NEURO", "CEREBRUM"})


def _whole_words(*words: str) -> re.Pattern[str]:
    """Any of ``words`` (regex fragments) as a whole word, plural s allowed."""
    return re.compile(r"\b(?:" + "|".join(words) + r")s?\b", re.IGNORECASE)


# Words of a Study/Series Description or Protocol Name that name a body region other than
# the head, matched as whole words once separators are spaces ("L_SPINE", "t2_tse_sag_knee").
# "cardiac gated/triggered" is a brain CSF-flow or DTI technique, not the heart.
NON_BRAIN_REGIONS = {
    "the spine": _whole_words("spine", "[clt]s?spine", "lumbar", "thoracic", "sacrum",
                              "sacral", "coccyx"),
    "the shoulder": _whole_words("shoulder"),
    "the elbow": _whole_words("elbow"),
    "the wrist": _whole_words("wrist"),
    "the hand": _whole_words("hand"),
    "the arm": _whole_words("arm", "forearm", "humerus"),
    "the hip": _whole_words("hip"),
    "the knee": _whole_words("knee"),
    "the leg": _whole_words("leg", "thigh", "femur", "femoral", "tibia", "calf"),
    "the ankle": _whole_words("ankle"),
    "the foot": _whole_words("foot", "feet", "toe"),
    "the abdomen": _whole_words("abdomen", "abdominal", "liver", "hepatic", "pancreas",
                                "pancreatic", "kidney", "renal", "mrcp"),
    "the pelvis": _whole_words("pelvis", "pelvic", "prostate", "uterus", "uterine", "rectum",
                               "rectal"),
    "the breast": _whole_words("breast"),
    "the heart": _whole_words("cardiac(?! (?:gat|trig))", "heart"),
    "the chest": _whole_words("chest", "thorax"),
}
# A field naming the head keeps the descriptions from refusing ("brain + C-spine"); fMRI,
# BOLD and MPRAGE are head-only sequences ("fMRI hand motor"). Not "femoral head".
HEAD_WORDS = _whole_words(
    "brain", "(?<!femoral )(?<!humeral )head", "skull", r"neuro\w*", r"cerebr\w*",
    r"cerebell\w*", r"(?:intra)?crani\w*", "pituitary", r"hypophys\w*", "sellar?", "iac",
    "orbit", r"hippocamp\w*", "kopf", "schädel", "schaedel", "cerveau", "cabeza", "fmri",
    "bold", "mp2?rage")
SEPARATORS = re.compile(r"[\W_]+")  # "_", "-", ".", "^", "/" ... read as spaces


def metadata_problem(series: Series) -> Reason | None:
    """Why the DICOM header says this is not a brain MRI, or None: the Modality, the Body
    Part Examined, or a description or protocol naming another body region (NON_BRAIN_REGIONS)
    while no field names the head."""
    modality = (series.info.modality or "").upper()
    if modality and modality != "MR":
        return Reason(ReasonKind.NOT_MR, f"not an MR image (modality {modality})")
    body_part = (series.info.body_part_examined or "").upper().replace(" ", "")
    if body_part and body_part not in BRAIN_BODY_PARTS:
        return Reason(ReasonKind.BODY_PART,
                      f"body part '{series.info.body_part_examined}' is not the brain")
    fields = {"series description": series.info.series_description,
              "protocol name": series.info.protocol_name,
              "study description": series.info.study_description}
    words = {name: SEPARATORS.sub(" ", value) for name, value in fields.items() if value}
    if body_part or any(HEAD_WORDS.search(text) for text in words.values()):
        return None  # a brain body part or a head word: refusing a brain is a failure too
    for name, text in words.items():
        for region, pattern in NON_BRAIN_REGIONS.items():
            if pattern.search(text):
                return Reason(ReasonKind.BODY_PART,
                              f"{name} '{fields[name]}' names {region}, not the brain")
    return None
