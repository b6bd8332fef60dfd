"""Archive triage: every study of DICOM/PNG trees, one JSON each and one results table,
resumable, on this machine's processes or a Dask cluster. No Qt."""
