"""The few loading errors, named by what went wrong for the user."""

from __future__ import annotations


class UnreadableImageError(Exception):
    """A file that cannot be turned into an image; the message says why in plain words."""


class NotAnImageError(UnreadableImageError):
    """A file that is not an image at all (text notes, a DICOMDIR index, a report)."""
