"""DICOM JSON (PS3.18 F.2), decoded with msgspec: a dataset is ``{"GGGGEEEE": Attribute}``.

The decoder checks the shape (8-hex-digit tags, a two-letter VR, ``Value`` a list) and the body's
size is held to the client's limits before it is decoded; a value a caller reads is checked when
read (:func:`string`, :func:`sequence`). pydicom users turn a dataset into a ``pydicom.Dataset``
with ``pydicom.Dataset.from_json(msgspec.to_builtins(dataset))``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .exceptions import DicomJsonError, NotDicomJsonError

__all__ = [
    "Attribute",
    "Dataset",
    "decode_datasets",
    "decode_dataset",
    "is_dicom_json",
    "string",
    "strings",
    "sequence",
    "tag",
    "MAX_DATASETS",
]

#: The most datasets one answer may hold (a QIDO page, a series' metadata).
MAX_DATASETS = 1_000_000

Tag = Annotated[str, msgspec.Meta(pattern="^[0-9A-Fa-f]{8}$")]
VR = Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")]


class Attribute(msgspec.Struct, frozen=True, omit_defaults=True):
    """One attribute: its VR and at most one of ``Value`` (a list: strings, numbers, person-name
    objects or nested datasets), ``InlineBinary`` (base64) or ``BulkDataURI``."""

    vr: VR
    Value: list[Any] | None = None
    InlineBinary: str | None = None
    BulkDataURI: str | None = None


#: One DICOM JSON dataset, keyed by tag (upper-case hex, as the standard writes it).
Dataset = dict[Tag, Attribute]

_DATASETS = msgspec.json.Decoder(list[Dataset])
_ONE_OR_MANY = msgspec.json.Decoder(Dataset | list[Dataset])


def is_dicom_json(content_type: str) -> bool:
    """Whether a Content-Type announces DICOM JSON (``application/dicom+json`` or plain JSON)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in ("application/dicom+json", "application/json")


def decode_datasets(body: bytes, what: str, content_type: str | None = None) -> list[Dataset]:
    """The datasets of a DICOM JSON answer (an array; an empty body is no datasets).

    ``content_type`` (when given) must announce JSON: an HTML page is a :class:`NotDicomJsonError`,
    not a decode error deep inside. Anything else malformed is a :class:`DicomJsonError` naming
    ``what`` and where it went wrong.
    """
    if content_type is not None and body and not is_dicom_json(content_type):
        raise NotDicomJsonError(what, content_type)
    if not body.strip():
        return []
    datasets = _decode(_DATASETS, body, what)
    if len(datasets) > MAX_DATASETS:
        raise DicomJsonError(f"{what}: {len(datasets)} datasets, more than {MAX_DATASETS}")
    return datasets


def decode_dataset(body: bytes, what: str, content_type: str | None = None) -> Dataset:
    """One DICOM JSON dataset (a STOW-RS answer): an object, or an array of exactly one; an
    empty body is an empty dataset. Errors as for :func:`decode_datasets`."""
    if content_type is not None and body and not is_dicom_json(content_type):
        raise NotDicomJsonError(what, content_type)
    if not body.strip():
        return {}
    found = _decode(_ONE_OR_MANY, body, what)
    if isinstance(found, dict):
        return found
    if len(found) != 1:
        raise DicomJsonError(f"{what}: {len(found)} datasets where one was expected")
    return found[0]


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, what: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise DicomJsonError(f"{what}: not DICOM JSON ({exc})") from None
    except msgspec.DecodeError as exc:
        raise DicomJsonError(f"{what}: malformed JSON ({exc})") from None
    except RecursionError:
        raise DicomJsonError(f"{what}: nested too deeply") from None


def tag(value: int | str) -> str:
    """A tag as DICOM JSON keys it: ``0x0020000D`` or ``"0020000d"`` -> ``"0020000D"``."""
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"{value:#x} is not a DICOM tag")
        return f"{value:08X}"
    text = value.replace(",", "").replace("(", "").replace(")", "").strip()
    if len(text) != 8 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
        raise ValueError(f"{value!r} is not a DICOM tag (GGGGEEEE)")
    return text.upper()


def _values(dataset: Dataset, key: int | str) -> list[Any]:
    attribute = dataset.get(tag(key))
    return [] if attribute is None or attribute.Value is None else attribute.Value


def strings(dataset: Dataset, key: int | str) -> list[str]:
    """Every value of a string attribute (a UI, CS, LO...); a person name's Alphabetic form."""
    out = []
    for value in _values(dataset, key):
        if isinstance(value, dict):  # PN: {"Alphabetic": ...}
            value = value.get("Alphabetic", "")
        if not isinstance(value, (str, int, float)):
            raise DicomJsonError(f"({tag(key)[:4]},{tag(key)[4:]}): a string value was expected")
        out.append(str(value))
    return out


def string(dataset: Dataset, key: int | str, default: str = "") -> str:
    """The first value of a string attribute, or ``default`` when it is absent or empty."""
    values = strings(dataset, key)
    return values[0] if values else default


def sequence(dataset: Dataset, key: int | str) -> list[Dataset]:
    """The items of a sequence (SQ) attribute, each decoded and checked as a dataset."""
    try:
        return [msgspec.convert(item, Dataset) for item in _values(dataset, key)]
    except msgspec.ValidationError as exc:
        raise DicomJsonError(f"({tag(key)[:4]},{tag(key)[4:]}): an item is not a DICOM JSON dataset ({exc})") from None
