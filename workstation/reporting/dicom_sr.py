"""The triage results as a DICOM structured report: Comprehensive 3D SR, TID 1500.

One "Imaging Measurement Report" (TID 1500) for the study, observed by the triage model
(a device observer; the reader as a person observer when a reading was recorded). Each
assessed series is one measurement group (TID 1501) that holds

* the verdict, coded twice: SNOMED CT "Neoplasm" = present / absent / indeterminate where
  the verdict has such a meaning, and always the private code of the verdict (tumour / no
  tumour / needs review / cannot assess) in the scheme ``99BRTRIAGE``;
* the predicted class (private codes), the verdict's confidence and the probability of the
  predicted class (no units, 0 to 1);
* each review reason (private codes, one per ReasonKind) with its words as a comment;
* the algorithm (name, version, sha256 as a parameter);
* the key images of the report (the group's source images), each also a point region at
  its most suspicious pixel with its tumour probability (TID 1410);
* the reader's recorded reading (agreement, corrected class, note) when one exists.

docs/DICOM_RESULTS.md lists the private codes and the tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from highdicom import UID
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from workstation.analysis.findings import CLASSES, ReasonKind, SeriesVerdict, Verdict
from workstation.analysis.run import StudyTriage
from workstation.reporting.content import key_images
from workstation.reporting.dicom_source import (
    DECISION_SUPPORT,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBERS,
    SOFTWARE_VERSION,
    NotExportableError,
    SourceImage,
    quiet_names,
    source_images,
    study_source,
)
from workstation.store.readings import Reading, series_key

SCHEME = "99BRTRIAGE"
SCHEME_NAME = "Brain MRI triage workstation private codes"


def private(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, SCHEME, meaning[:64])


# concept names
TRIAGE_VERDICT = private("BRT001", "Triage verdict")
PREDICTED_CLASS = private("BRT002", "Predicted class")
REVIEW_REASON = private("BRT003", "Review reason")
VERDICT_CONFIDENCE = private("BRT004", "Verdict confidence")
TUMOUR_PROBABILITY = private("BRT005", "Tumour probability")
CLASS_PROBABILITY = private("BRT006", "Predicted class probability")
READER_AGREEMENT = private("BRT007", "Reader agreement with the triage verdict")
READER_CLASS = private("BRT008", "Reader's class")
KEY_IMAGE = private("BRT009", "Key image")

VERDICT_CODES = {
    Verdict.TUMOUR: private("BRT010", "Tumour suspected (priority read)"),
    Verdict.NO_TUMOUR: private("BRT011", "No tumour detected (routine)"),
    Verdict.REVIEW: private("BRT012", "Needs human review"),
    Verdict.CANNOT_ASSESS: private("BRT013", "Cannot assess"),
}
# the verdict in SNOMED CT terms where it has such a meaning (not for "cannot assess")
NEOPLASM_VALUES = {
    Verdict.TUMOUR: CodedConcept(*codes.SCT.Present),
    Verdict.NO_TUMOUR: CodedConcept(*codes.SCT.Absent),
    Verdict.REVIEW: CodedConcept(*codes.SCT.Indeterminate),
}
CLASS_CODES = {
    "glioma": private("BRT020", "Glioma"),
    "meningioma": private("BRT021", "Meningioma"),
    "pituitary": private("BRT022", "Pituitary tumour"),
    "no_tumour": private("BRT023", "No tumour"),
    "other": private("BRT024", "Other"),
}
AGREEMENT_CODES = {"agree": private("BRT030", "Agrees"),
                   "disagree": private("BRT031", "Disagrees")}
# fixed numbers, never reused: a reason kind added later takes the next free one
_REASON_NUMBERS = {
    ReasonKind.EMPTY: 100, ReasonKind.BLANK: 101, ReasonKind.TOO_LONG: 102,
    ReasonKind.CT: 103, ReasonKind.NOT_BRAIN: 104, ReasonKind.LOW_CONFIDENCE: 105,
    ReasonKind.REGION_DISAGREES: 106, ReasonKind.NOT_MR: 107, ReasonKind.BODY_PART: 108,
    ReasonKind.NO_ANATOMICAL: 109, ReasonKind.NO_IMAGES: 110, ReasonKind.NO_TISSUE: 111,
    ReasonKind.MOSTLY_UNASSESSABLE: 112, ReasonKind.SOME_UNASSESSABLE: 113,
    ReasonKind.SINGLE_TUMOUR_IMAGE: 114, ReasonKind.SERIES_SUSPICION: 115,
    ReasonKind.LOW_CONFIDENCE_TUMOUR: 116,
}
REASON_CODES = {kind: private(f"BRT{number}", kind.value.replace("_", " "))
                for kind, number in _REASON_NUMBERS.items()}
NO_UNITS = CodedConcept(*codes.UCUM.NoUnits)


def _algorithm(result: StudyTriage) -> AlgorithmIdentification:
    return AlgorithmIdentification(name=result.model.name, version=result.model.version,
                                   parameters=[f"sha256={result.model.sha256}"])


def _probability(name: CodedConcept, value: float, result: StudyTriage) -> Measurement:
    return Measurement(name=name, value=round(float(value), 4), unit=NO_UNITS,
                       algorithm_id=_algorithm(result))


def _frames(image: SourceImage) -> list[int] | None:
    return None if image.frame is None else [image.frame + 1]


def _series_group(verdict: SeriesVerdict, result: StudyTriage, reading: Reading | None,
                  keys: Sequence[SourceImage]) -> MeasurementsAndQualitativeEvaluations:
    evaluations = [QualitativeEvaluation(TRIAGE_VERDICT, VERDICT_CODES[verdict.verdict])]
    if verdict.verdict in NEOPLASM_VALUES:
        evaluations.append(QualitativeEvaluation(CodedConcept(*codes.SCT.Neoplasm),
                                                 NEOPLASM_VALUES[verdict.verdict]))
    if verdict.predicted_class in CLASS_CODES:
        evaluations.append(QualitativeEvaluation(PREDICTED_CLASS,
                                                 CLASS_CODES[verdict.predicted_class]))
    evaluations += [QualitativeEvaluation(REVIEW_REASON, REASON_CODES[kind])
                    for kind in verdict.reason_kinds]
    if reading is not None:
        evaluations.append(QualitativeEvaluation(READER_AGREEMENT,
                                                 AGREEMENT_CODES[reading.agreement]))
        if reading.corrected_class in CLASS_CODES:
            evaluations.append(QualitativeEvaluation(READER_CLASS,
                                                     CLASS_CODES[reading.corrected_class]))
    measurements = [_probability(VERDICT_CONFIDENCE, verdict.confidence, result)]
    if verdict.predicted_class in CLASSES[:3] and verdict.class_probability > 0:
        measurements.append(_probability(CLASS_PROBABILITY, verdict.class_probability,
                                         result))
    series = verdict.series
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=UID(), identifier=f"Series {series.info.series_number or ''} "
                                  f"{series.description}".replace("  ", " ")[:64]),
        finding_type=CodedConcept(*codes.SCT.Neoplasm),
        algorithm_id=_algorithm(result),
        finding_sites=[FindingSite(CodedConcept(*codes.SCT.Brain))],
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[SourceImageForMeasurementGroup.from_source_image(k.dataset, _frames(k))
                       for k in keys] or None,
    )
    comments = [f"Review reason: {r.text}" for r in verdict.reasons]
    comments.insert(0, f"{verdict.headline} ({DECISION_SUPPORT})")
    if reading is not None:
        words = f"Reader's reading: {reading.agreement}s"
        if reading.corrected_class:
            words += f", class {reading.corrected_class}"
        if reading.note:
            words += f"; note: {reading.note}"
        who = " ".join(x for x in (reading.reader, reading.recorded_at) if x)
        comments.append(f"{words} ({who})" if who else words)
    content = group[0].ContentSequence
    for text in comments:
        content.append(TextContentItem(name=CodedConcept(*codes.DCM.Comment), value=text,
                                       relationship_type=RelationshipTypeValues.CONTAINS))
    return group


def _key_image_regions(verdict: SeriesVerdict, result: StudyTriage,
                       keys: Sequence[SourceImage]
                       ) -> list[PlanarROIMeasurementsAndQualitativeEvaluations]:
    """Each key image as a point at its most suspicious pixel with its p(tumour)."""
    groups = []
    for key in keys:
        finding = key.finding
        if finding.peak is None:
            continue
        row, col = finding.peak
        region = ImageRegion(
            graphic_type=GraphicTypeValues.POINT,
            graphic_data=np.array([[col + 0.5, row + 0.5]]),
            source_image=SourceImageForRegion.from_source_image(key.dataset, _frames(key)))
        words = verdict.series.image_words(finding.index)
        groups.append(PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(
                uid=UID(), identifier=f"{verdict.series.description}, {words}"[:64]),
            referenced_region=region,
            finding_type=KEY_IMAGE,
            algorithm_id=_algorithm(result),
            measurements=[_probability(TUMOUR_PROBABILITY, finding.tumour_probability,
                                       result)],
            qualitative_evaluations=[
                QualitativeEvaluation(TRIAGE_VERDICT, VERDICT_CODES[finding.verdict])],
        ))
    return groups


def _observers(result: StudyTriage, readings: dict[str, Reading]) -> ObservationContext:
    device = ObserverContext(
        observer_type=CodedConcept(*codes.DCM.Device),
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[result.model.sha256 or result.model.name]),
            name=result.model.name[:64], manufacturer_name=MANUFACTURER,
            model_name=f"{result.model.name} {result.model.version}"[:64],
            serial_number=result.model.sha256[:16] or None))
    readers = [r.reader for r in readings.values() if r.reader]
    person = None
    if readers:
        person = ObserverContext(
            observer_type=CodedConcept(*codes.DCM.Person),
            observer_identifying_attributes=PersonObserverIdentifyingAttributes(
                name=readers[0].replace(",", "^")[:64]))
    return ObservationContext(observer_person_context=person,
                              observer_device_context=device)


def build_structured_report(result: StudyTriage, readings: dict[str, Reading],
                            series_uid: str | None = None) -> Comprehensive3DSR:
    """The study's TID 1500 report over every DICOM series of ``result``.

    Raises NotExportableError when no series can be referenced (no DICOM series).
    """
    groups: list[MeasurementsAndQualitativeEvaluations
                 | PlanarROIMeasurementsAndQualitativeEvaluations] = []
    evidence: dict[str, Dataset] = {}
    for verdict in result.verdicts:
        try:
            images = source_images(verdict)
        except NotExportableError:
            continue
        by_index = {s.finding.index: s for s in images}
        chosen, _ = key_images(verdict)
        keys = [by_index[f.index] for f in chosen if f.index in by_index]
        for key in keys:
            evidence[key.dataset.SOPInstanceUID] = key.dataset
        groups.append(_series_group(verdict, result, readings.get(series_key(verdict.series)),
                                    keys))
        groups.extend(_key_image_regions(verdict, result, keys))
    if not groups:
        raise NotExportableError("no series of the study can be referenced by a DICOM "
                                 "structured report")
    with quiet_names():  # the person names as the source and the reader wrote them
        source = study_source(result.verdicts)
        report = MeasurementReport(
            observation_context=_observers(result, readings),
            procedure_reported=CodedConcept(*codes.LN.BrainMRI),
            imaging_measurements=groups,
            # the Image Library (TID 1600) describes single-frame images only: highdicom reads
            # their geometry from the top level, where an enhanced multi-frame file has none
            referenced_images=[d for d in evidence.values() if "PixelSpacing" in d] or None,
        )
        sr = Comprehensive3DSR(
            evidence=list(evidence.values()) or [source],
            content=report[0],
            series_instance_uid=series_uid or UID(),
            series_number=SERIES_NUMBERS["SR"],
            sop_instance_uid=UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=f"AI triage report ({DECISION_SUPPORT})",
            manufacturer_model_name=MODEL_NAME,
            software_versions=SOFTWARE_VERSION,
            coding_schemes=[CodingSchemeIdentificationItem(
                designator=SCHEME, name=SCHEME_NAME,
                responsible_organization=MANUFACTURER)],
        )
    return sr
