"""Sectra results as DICOM: Microscopy Bulk Simple Annotations (:func:`to_dicom_ann`) and a
TID 1500 measurement report (:func:`to_dicom_sr`), in the slide's own frame of reference.

Needs the ``dicom`` extra (highdicom, pydicom): ``pip install 'sectra-sdk[dicom]'``; importing this
package without it raises :class:`~sectra_core.errors.MissingExtraError`. ``import sectra_core``
does not import it. See docs/dicom.md.
"""

from ..errors import require

require("pydicom", "dicom", "DICOM export")
require("highdicom", "dicom", "DICOM export")

from .ann import ANN_SOP_CLASS, HOLE_OF, to_dicom_ann  # noqa: E402
from .codes import DEFAULT_CATEGORY, DEFAULT_TYPE, LOCAL_SCHEME  # noqa: E402
from .identity import DicomSourceError, SlideIdentity, slide_identity  # noqa: E402
from .sr import to_dicom_sr  # noqa: E402

__all__ = [
    "to_dicom_ann", "to_dicom_sr", "slide_identity", "SlideIdentity", "DicomSourceError",
    "DEFAULT_CATEGORY", "DEFAULT_TYPE", "LOCAL_SCHEME", "HOLE_OF", "ANN_SOP_CLASS",
]
