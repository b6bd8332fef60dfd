"""The PDF triage report as a DICOM Encapsulated PDF (pydicom; highdicom has no class).

The PDF's bytes go into Encapsulated Document (0042,0011) unchanged, padded with one zero
byte when their length is odd (DICOM values have even length, PS3.5 7.1.1), and
Encapsulated Document Length (0042,0015) records the real length, so ``extract_pdf`` gives
back the report byte for byte. Weasis and OHIF open it from the study.
"""

from __future__ import annotations

from datetime import datetime

from highdicom import UID
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from workstation.reporting.dicom_source import (
    DECISION_SUPPORT,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBERS,
    SOFTWARE_VERSION,
    copy_patient_study,
)

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
DOCUMENT_TITLE = "Brain MRI triage report"


class NotAPdfError(ValueError):
    """The bytes to encapsulate are not a PDF document."""


def build_encapsulated_pdf(pdf: bytes, source: Dataset, series_uid: str | None = None
                           ) -> Dataset:
    """The report ``pdf`` as an Encapsulated PDF instance of ``source``'s patient and
    study (``source``: a header of the study)."""
    if not pdf.startswith(b"%PDF-"):
        raise NotAPdfError("the triage report to store in DICOM is not a PDF document")
    sop_uid = UID()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ENCAPSULATED_PDF_STORAGE)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = source.get("SpecificCharacterSet", "ISO_IR 192")
    ds.SOPClassUID = UID(ENCAPSULATED_PDF_STORAGE)
    ds.SOPInstanceUID = sop_uid
    copy_patient_study(source, ds)
    now = datetime.now()
    # Encapsulated Document Series
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid or UID()
    ds.SeriesNumber = SERIES_NUMBERS["PDF"]
    ds.SeriesDescription = f"AI triage report PDF ({DECISION_SUPPORT})"
    ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    # General Equipment, SC Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.ConversionType = "WSD"  # made on a workstation
    # Encapsulated Document
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the report names the patient
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = DOCUMENT_TITLE
    concept = Dataset()
    concept.CodeValue = codes.LN.MRIHeadReport.value
    concept.CodingSchemeDesignator = codes.LN.MRIHeadReport.scheme_designator
    concept.CodeMeaning = codes.LN.MRIHeadReport.meaning
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def extract_pdf(ds: Dataset) -> bytes:
    """The PDF of an Encapsulated PDF instance, without the padding byte."""
    data = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if length is not None:
        return data[:int(length)]
    # an instance from elsewhere without the length: a PDF never ends in a zero byte
    return data[:-1] if data.endswith(b"\x00") else data
