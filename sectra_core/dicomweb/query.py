"""QIDO-RS search requests (PS3.18 §10.6): the path for a level and the query parameters.

The parameters are those Sectra's own contrib QIDO client sends (``PatientID``,
``AccessionNumber``, ``StudyInstanceUID``, ``ModalitiesInStudy``, ``limit``, ``offset``,
``includefield``) plus any attribute by keyword or tag. Values can be patient data: a request's
route (what logs and errors show) never holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from ..errors import ConfigurationError

__all__ = ["Level", "Query", "search_path"]

#: What a search returns: studies, series or instances.
Level = Literal["studies", "series", "instances"]

_UID_CHARS = frozenset("0123456789.")


def _uid(value: str, what: str) -> str:
    # A UID is digits and dots, at most 64 characters (PS3.5 §9.1): anything else in a path
    # segment would change the request.
    if not value or len(value) > 64 or not set(value) <= _UID_CHARS:
        raise ConfigurationError(f"{what} {value!r} is not a DICOM UID (digits and dots, at most 64)")
    return value


def search_path(level: Level, study_uid: str | None = None, series_uid: str | None = None) -> tuple[str, str]:
    """The path below the DICOMweb root and its route (the path with placeholders, for logs).

    ``/studies``; ``/series`` or ``/studies/{study}/series``; ``/instances``,
    ``/studies/{study}/instances`` or ``/studies/{study}/series/{series}/instances``.
    """
    if level not in ("studies", "series", "instances"):
        raise ConfigurationError(f"QIDO level {level!r}: studies, series or instances")
    if series_uid is not None and (study_uid is None or level != "instances"):
        raise ConfigurationError("a series UID narrows an instance search within a study")
    if level == "studies" or study_uid is None:
        return f"/{level}", f"/{level}"
    path, route = f"/studies/{_uid(study_uid, 'study UID')}", "/studies/{study}"
    if series_uid is not None:
        path, route = f"{path}/series/{_uid(series_uid, 'series UID')}", f"{route}/series/{{series}}"
    return f"{path}/{level}", f"{route}/{level}"


@dataclass(frozen=True, slots=True)
class Query:
    """What to search for. ``None`` leaves a key out; ``*``/``?`` wildcards are the server's.

    ``includefield``: extra attributes to return (keywords or tags), or ``["all"]``.
    ``match``: any other matching key, by keyword (``"StudyDate"``) or tag (``"00080020"``).
    ``fuzzy``: ask for fuzzy person-name matching.
    """

    patient_id: str | None = None
    accession_number: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    modalities: Sequence[str] = ()
    limit: int | None = None
    offset: int | None = None
    includefield: Sequence[str] = ()
    match: Mapping[str, str] = field(default_factory=dict)
    fuzzy: bool = False

    def params(self) -> list[tuple[str, str]]:
        """The query string's pairs, in a stable order."""
        pairs: list[tuple[str, str]] = []
        for key, value in (
            ("PatientID", self.patient_id),
            ("AccessionNumber", self.accession_number),
            ("StudyInstanceUID", self.study_uid),
            ("SeriesInstanceUID", self.series_uid),
        ):
            if value is not None:
                _check_value(key, value)
                pairs.append((key, value))
        if self.modalities:
            for modality in self.modalities:
                _check_value("ModalitiesInStudy", modality)
            pairs.append(("ModalitiesInStudy", ",".join(self.modalities)))
        for key, value in self.match.items():
            if not key or not key.isalnum():
                raise ConfigurationError(f"matching key {key!r}: a keyword or an 8-digit tag")
            _check_value(key, value)
            pairs.append((key, value))
        for name, number in (("limit", self.limit), ("offset", self.offset)):
            if number is not None:
                if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                    raise ConfigurationError(f"QIDO {name} must be a whole number >= 0, not {number!r}")
                pairs.append((name, str(number)))
        for included in self.includefield:
            if not included or not included.replace(".", "").isalnum():
                raise ConfigurationError(f"includefield {included!r}: a keyword, a tag or 'all'")
            pairs.append(("includefield", included))
        if self.fuzzy:
            pairs.append(("fuzzymatching", "true"))
        return pairs

    def query_string(self) -> str:
        """The encoded query string (without ``?``), empty when nothing is asked."""
        return "&".join(f"{quote(key, safe='')}={quote(value, safe='*?,')}" for key, value in self.params())


def _check_value(key: str, value: str) -> None:
    if not isinstance(value, str) or any(ord(ch) < 0x20 for ch in value):
        raise ConfigurationError(f"QIDO {key}: a string without control characters was expected")

