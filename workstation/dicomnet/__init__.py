"""DICOM networking: the receiver (C-STORE/C-ECHO SCP), query/retrieve from a PACS and
sending results to a destination (pynetdicom). No Qt, no torch."""
