"""Offline brain MRI triage workstation (decision support, not a diagnosis)."""

__version__ = "0.1.0"
