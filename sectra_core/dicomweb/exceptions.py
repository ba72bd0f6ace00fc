"""The DICOMweb errors: every one a :class:`~sectra_core.errors.SectraError`.

UIDs (SOP Instance UIDs) are named in messages: they identify an object, not a patient. Patient
names and ids from an answer are never quoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DecodeError, SectraError

__all__ = ["DicomWebError", "DicomJsonError", "NotDicomJsonError", "StowError", "StowFailure", "StowFileError"]


class DicomWebError(SectraError):
    """A DICOMweb exchange went wrong (besides an HTTP status, which is an ``HTTPStatusError``)."""


class DicomJsonError(DicomWebError, DecodeError):
    """An answer claimed to be DICOM JSON (PS3.18 F.2) but is not: malformed, wrong shape, or too large."""


class NotDicomJsonError(DicomJsonError):
    """The server answered something else than DICOM JSON (an HTML login page, plain text).

    ``content_type`` is what the server declared.
    """

    def __init__(self, what: str, content_type: str) -> None:
        self.content_type = content_type
        super().__init__(f"{what}: expected DICOM JSON (application/dicom+json), got {content_type or 'no Content-Type'}")


@dataclass(frozen=True, slots=True)
class StowFailure:
    """One instance a STOW-RS server refused: its SOP Instance UID and the DICOM failure reason
    (0008,1197; e.g. 0xA700 out of resources, 0xA900 SOP class mismatch, 0xC000 cannot understand),
    None when the server gave none."""

    sop_instance_uid: str
    reason: int | None = None
    sop_class_uid: str = ""


class StowError(DicomWebError):
    """A STOW-RS store did not store everything it was sent.

    ``stored``: the SOP Instance UIDs the server says it stored (ReferencedSOPSequence, 0008,1199);
    ``failed``: :class:`StowFailure` for each instance it refused (FailedSOPSequence, 0008,1198)
    and for each instance it did not mention at all (reason None). ``status``: the HTTP status.
    Only what the server confirmed is in ``stored``: nothing half-sent is reported as sent.
    """

    def __init__(self, message: str, *, status: int, stored: Sequence[str] = (), failed: Sequence[StowFailure] = ()) -> None:
        self.status = status
        self.stored = list(stored)
        self.failed = list(failed)
        super().__init__(message)


class StowFileError(DicomWebError, ValueError):
    """A file given to STOW-RS is not a DICOM Part 10 file (no ``DICM`` preamble), or it changed
    size while it was being sent. Raised before (or instead of) sending it."""
