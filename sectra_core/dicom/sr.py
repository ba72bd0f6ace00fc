"""A result's numbers as a DICOM Structured Report: a TID 1500 Measurement Report (highdicom.sr).

Each number in the result's ``displayProperties`` is a measurement (named and united by
:mod:`.codes`) of one measurement group, which references the slide's level-0 instance and names
the app as the algorithm. The report is a Comprehensive SR in the slide's study. Text properties and
``displayResult`` have no coded form and are not written (ANN and GeoJSON carry the shapes).
"""

from __future__ import annotations

import math
from typing import Any

from .. import __version__
from .. import schemas as s
from ..errors import ValidationError
from .ann import _short
from .codes import MeasurementCodes, measurement_codes
from .identity import DicomSourceError, SlideIdentity, Source, slide_identity

__all__ = ["to_dicom_sr"]


def to_dicom_sr(
    result: s.Result,
    source: Source | SlideIdentity,
    *,
    measurements: MeasurementCodes | None = None,
    algorithm_name: str = "Sectra IA-API application",
    series_number: int = 901,
    manufacturer: str = "sectra-sdk",
    result_id: str | int | None = None,
) -> Any:
    """The numbers of ``result``'s ``displayProperties`` as a TID 1500 measurement report (a
    ``highdicom.sr.Comprehensive3DSR``, a pydicom ``Dataset``) about the slide whose DICOM ``source``
    is. ``measurements`` maps a key to its (name, unit) codes (default: :mod:`.codes`).
    ``result_id``: the IA-API result id, kept as the group's tracking identifier.

    Raises :class:`~sectra_core.dicom.DicomSourceError` when ``source`` is not the slide's DICOM,
    :class:`~sectra_core.errors.ValidationError` when the result has no number to report.
    """
    import highdicom as hd
    from highdicom.sr import (
        AlgorithmIdentification,
        Comprehensive3DSR,
        DeviceObserverIdentifyingAttributes,
        Measurement,
        MeasurementReport,
        MeasurementsAndQualitativeEvaluations,
        ObservationContext,
        ObserverContext,
        SourceImageForMeasurementGroup,
        TrackingIdentifier,
    )
    from pydicom.sr.codedict import codes

    if not isinstance(result, s.Result):
        raise ValidationError(f"to_dicom_sr takes a Result, got {type(result).__name__}")
    identity = slide_identity(source)
    numbers = [(k, float(v)) for k, v in (result.display_properties or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not numbers:
        raise ValidationError(f"result on slide {result.slide_id!r} has no number in its displayProperties: "
                              "a measurement report would be empty")
    image = identity.dataset
    version = _short(result.application_version or "unknown")
    algorithm = AlgorithmIdentification(name=_short(algorithm_name), version=version)
    items = []
    for key, value in numbers:
        name, unit = measurement_codes(key, measurements)
        items.append(Measurement(name=name, value=value, unit=unit, algorithm_id=algorithm))
    tracking = f"result {result_id}" if result_id is not None else f"result on slide {result.slide_id}"
    try:
        group = MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=_short(tracking)),
            algorithm_id=algorithm, measurements=items,
            source_images=[SourceImageForMeasurementGroup.from_source_image(image)],
        )
        observer = ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                uid=hd.UID(), name=_short(algorithm_name), manufacturer_name=manufacturer,
                model_name="sectra-sdk to_dicom_sr",
            ),
        )
        report = MeasurementReport(
            observation_context=ObservationContext(observer_device_context=observer),
            procedure_reported=codes.DCM.WholeSlideImaging, imaging_measurements=[group],
        )
        sr = Comprehensive3DSR(
            evidence=[image], content=report, series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer=manufacturer, is_complete=True,
        )
    except (AttributeError, KeyError) as exc:
        raise DicomSourceError(f"the slide's DICOM lacks what a report copies from it ({exc}): pass the level-0 "
                               "instance's full metadata (WADO-RS /metadata) or its files") from None
    sr.SoftwareVersions = __version__
    sr.SeriesDescription = _short(f"{algorithm_name} measurements")
    return sr
