"""The codes a DICOM export writes: each annotation group's property category and type, and each
measurement's name and unit (a documented default set, overridable per class or property).

DICOM codes every annotation group: *what kind of thing* (category) and *what it is* (type). A
Sectra result has no codes, only classes (a primitive item's class name or stroke colour, a
gallery's tags), so every group gets :data:`DEFAULT_CATEGORY` / :data:`DEFAULT_TYPE` (SNOMED CT
"Tissue"/"Tissue", neutral: it claims nothing about the tissue) and its class as the group's
label, unless the ``classes`` mapping of :func:`~sectra_core.dicom.to_dicom_ann` gives its codes::

    from pydicom.sr.coding import Code
    classes = {"tumor": (Code("49755003", "SCT", "Morphologically abnormal structure"),
                         Code("108369006", "SCT", "Neoplasm"))}

Numbers from ``displayProperties`` have no standard code either: each is named by a code of the
local scheme :data:`LOCAL_SCHEME` (``99`` + name: DICOM's form for a private coding scheme) whose
meaning is the property's key, unit "no units" (UCUM ``1``), unless the ``measurements`` mapping
gives ``(name, unit)`` codes for the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from pydicom.sr.coding import Code

__all__ = [
    "DEFAULT_CATEGORY", "DEFAULT_TYPE", "LOCAL_SCHEME", "NO_UNITS", "AREA", "SQUARE_MICROMETER", "SORT_KEY",
    "ClassCodes", "MeasurementCodes", "class_codes", "measurement_codes",
]

#: The property category of a group whose class is not mapped: SNOMED CT "Tissue".
DEFAULT_CATEGORY = Code("85756007", "SCT", "Tissue")
#: The property type of a group whose class is not mapped: SNOMED CT "Tissue".
DEFAULT_TYPE = Code("85756007", "SCT", "Tissue")
#: The coding scheme of the SDK's own codes (a result's property names, a patch's sort key).
LOCAL_SCHEME = "99SECTRA"
#: UCUM's unit of a pure number.
NO_UNITS = Code("1", "UCUM", "no units")
#: A polygon's area (SNOMED CT), in :data:`SQUARE_MICROMETER`.
AREA = Code("42798000", "SCT", "Area")
SQUARE_MICROMETER = Code("um2", "UCUM", "square micrometer")
#: A gallery patch's ``sortKeyValue``.
SORT_KEY = Code("sortKeyValue", LOCAL_SCHEME, "Sectra patch sort key value")

#: Class name (or stroke colour, or gallery tag) → (property category, property type).
ClassCodes = Mapping[str, tuple[Code, Code]]
#: displayProperties key → (measurement name, unit).
MeasurementCodes = Mapping[str, tuple[Code, Code]]


def class_codes(name: str, mapping: ClassCodes | None) -> tuple[Code, Code]:
    """The category and type of the group of class ``name``."""
    if mapping and name in mapping:
        return mapping[name]
    return DEFAULT_CATEGORY, DEFAULT_TYPE


def _local_value(key: str) -> str:
    # A code value is SH (16 characters, no backslash): a longer key gets a stable digest instead
    # (its meaning still says the key).
    clean = key.replace("\\", "/").strip()
    if 0 < len(clean) <= 16:
        return clean
    return "p" + hashlib.sha256(key.encode()).hexdigest()[:15]


def measurement_codes(key: str, mapping: MeasurementCodes | None) -> tuple[Code, Code]:
    """The (name, unit) codes of the ``displayProperties`` number ``key``."""
    if mapping and key in mapping:
        return mapping[key]
    meaning = key.strip()[:64] or "unnamed property"
    return Code(_local_value(key), LOCAL_SCHEME, meaning), NO_UNITS
