"""Verdicts -> the printed triage report (reportlab)."""
