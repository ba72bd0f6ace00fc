"""The client API as operation builders: one function per client method, same name, same arguments.

Both clients (urllib3 and trio) wrap these one-to-one, so adding an endpoint here and to
:data:`CLIENT_OPERATIONS` gives it to both; a parity test checks that they stay in step.
Each function is pure: it validates its arguments and returns an
:class:`~sectra_core.endpoints.Operation` (the endpoint table is :mod:`sectra_core.endpoints`).
"""

from __future__ import annotations

from . import schemas as s
from .errors import ValidationError
from .http import HttpResponse
from .endpoints import Operation, Recovery, endpoint

__all__ = [
    "CLIENT_OPERATIONS",
    "get_info",
    "get_image_metadata",
    "get_image_infos_in_case",
    "get_image_infos_in_case_by_slide_id",
    "get_label_image",
    "get_tile",
    "get_application",
    "create_results",
    "get_result_by_result_id",
    "get_all_results",
    "update_results",
    "get_attachment",
    "set_quality_control",
]


def _flag(value: bool) -> dict[str, str]:
    return {"includePHI": "true"} if value else {}


def _id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or value in {".", ".."}:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")
    return value


def get_info() -> Operation[s.ApplicationInfo]:
    """``GET /info``: the server's IA-API and software versions."""
    return Operation(endpoint("info"))


def get_image_metadata(
    slide_id: str, extended: bool = False, phi: bool = False
) -> Operation[s.ImageInfo]:
    """``GET /slides/{slide_id}/info``; ``extended`` adds exam/LIS fields, ``phi`` patient data."""
    query = {"scope": "extended"} if extended else {}
    return Operation(
        endpoint("image_info"), {"slide_id": _id(slide_id, "slide_id")}, query | _flag(phi)
    )


def _issuer(issuer: str | None) -> dict[str, str]:
    return {"accessionNumberIssuer": issuer} if issuer else {}


def get_image_infos_in_case(
    accession_number: str, phi: bool = False, accession_number_issuer_id: str | None = None
) -> Operation[list[s.CaseImageInfo]]:
    """``GET /requests/{accession}/images/info``: every slide of a case (IA-API 1.9+)."""
    return Operation(
        endpoint("case_images"),
        {"accession_number": _id(accession_number, "accession_number")},
        _flag(phi) | _issuer(accession_number_issuer_id),
    )


def get_image_infos_in_case_by_slide_id(
    slide_id: str, phi: bool = False, accession_number_issuer_id: str | None = None
) -> Operation[list[s.CaseImageInfo]]:
    """``GET /slides/{slide_id}/request/images/info``: every slide of this slide's case (IA-API 1.9+)."""
    return Operation(
        endpoint("case_images_by_slide"),
        {"slide_id": _id(slide_id, "slide_id")},
        _flag(phi) | _issuer(accession_number_issuer_id),
    )


def _label(data: bytes, response: HttpResponse) -> s.LabelImage | None:
    # 204: no label stored for this slide ("not all WSI have them", spec §4.8).
    if response.status == 204:
        return None
    return s.LabelImage(data=data, content_type=response.header("content-type", "image/jpeg"))


def get_label_image(slide_id: str) -> Operation[s.LabelImage | None]:
    """``GET /slides/{slide_id}/label``: the label image, or None when the slide has none (204)."""
    return Operation(endpoint("label"), {"slide_id": _id(slide_id, "slide_id")}, convert=_label)


def get_tile(
    slide_id: str,
    level: int,
    col: int,
    row: int,
    ext: str = "jpg",
    focal_plane: str | None = None,
    optical_path: str | None = None,
) -> Operation[bytes]:
    """``GET /images/{slide}_files/{level}/{col}_{row}[_{focal}].{ext}``: one DZI tile's bytes (spec §4.7)."""
    if min(level, col, row) < 0:
        raise ValidationError("tile level, col and row must be >= 0")
    if not ext.isalnum():
        raise ValidationError(f"tile extension must be alphanumeric, got {ext!r}")
    params = {"slide_id": _id(slide_id, "slide_id"), "level": str(level), "col": str(col),
              "row": str(row), "ext": ext}
    name = "tile"
    if focal_plane is not None:
        params["focal_plane"] = focal_plane
        name = "tile_focal"
    query = {"opticalPath": optical_path} if optical_path is not None else {}
    return Operation(endpoint(name), params, query)


def get_slide_files(slide_id: str) -> Operation[HttpResponse]:
    """``GET /slides/{slide_id}/files``: the streamed response; clients save it with a :class:`Download`."""
    return Operation(endpoint("files"), {"slide_id": _id(slide_id, "slide_id")})


def get_application(app_id: str) -> Operation[s.Application]:
    """``GET /applications/{app_id}``: the application as Sectra has it registered."""
    return Operation(endpoint("application"), {"app_id": _id(app_id, "app_id")})


def create_results(app_id: str, results: s.Result) -> Operation[s.ResultResponse]:
    """``POST /applications/{app_id}/results``: store a new result; returns it with ``id``/``versionId``."""
    if not isinstance(results, s.Result):
        raise ValidationError(f"results must be a Result, got {type(results).__name__}")
    if isinstance(results, s.ResultResponse):
        results = results.as_result()
    app_id = _id(app_id, "app_id")
    sent = results

    def stored(existing: list[s.ResultResponse]) -> s.ResultResponse | None:
        # Equal content is the test (newest first), so two identical results posted on purpose
        # are told apart only when nothing went wrong (docs/reliability.md).
        return next((r for r in reversed(existing) if same_result(sent, r)), None)

    # A POST that may have landed is looked up before it is posted again (spec §4.10: no delete).
    lookup = Recovery(get_all_results(results.slide_id, app_id), stored) if results.slide_id else None
    return Operation(endpoint("create_result"), {"app_id": app_id}, body=results, already_done=lookup)


def get_result_by_result_id(app_id: str, result_id: int | str) -> Operation[s.ResultResponse]:
    """``GET /applications/{app_id}/results/{result_id}``: one stored result."""
    return Operation(
        endpoint("get_result"),
        {"app_id": _id(app_id, "app_id"), "result_id": _id(str(result_id), "result_id")},
    )


def get_all_results(wsi_id: str, app_id: str) -> Operation[list[s.ResultResponse]]:
    """``GET /applications/{app_id}/results/slide/{wsi_id}``: this app's results on a slide, oldest first.

    The argument order (slide first) is the familiar client's.
    """
    return Operation(
        endpoint("slide_results"), {"app_id": _id(app_id, "app_id"), "slide_id": _id(wsi_id, "wsi_id")}
    )


def update_results(
    app_id: str, result_id: int | str, result: s.Result, version_id: str | None = None
) -> Operation[s.ResultResponse]:
    """``PUT /applications/{app_id}/results/{result_id}``: replace a stored result.

    Send the ``versionId`` you last read (taken from ``result`` when it is a
    :class:`ResultResponse`, or given as ``version_id``); a stale one is answered 409
    (:class:`~sectra_core.errors.ConflictError`).
    """
    if not isinstance(result, s.Result):
        raise ValidationError(f"result must be a Result, got {type(result).__name__}")
    if version_id is None and isinstance(result, s.ResultResponse):
        version_id = result.version_id or None
    body = s.ResultUpdate(id=result_id, version_id=version_id or None, **result.content_fields())

    def landed(current: s.ResultResponse) -> s.ResultResponse | None:
        # An earlier try may have landed and changed the versionId: if the stored result is what
        # we sent, the update is done; otherwise the 409 is real.
        return current if same_result(body, current) else None

    return Operation(
        endpoint("update_result"),
        {"app_id": _id(app_id, "app_id"), "result_id": _id(str(result_id), "result_id")},
        body=body,
        read_back=Recovery(get_result_by_result_id(app_id, result_id), landed),
    )


def same_result(sent: object, current: s.ResultResponse) -> bool:
    """Whether the stored ``current`` holds exactly the content that ``sent`` carried."""
    if not isinstance(sent, s.Result):
        return False
    return s.encode(sent.as_result()) == s.encode(current.as_result())


def get_attachment(
    app_id: str, result_id: int | str, name: str, byte_range: tuple[int, int | None] | None = None
) -> Operation[bytes]:
    """``GET .../results/{result_id}/attachments?name=...``; ``byte_range=(start, end)`` (end
    inclusive, None for "to the end") asks for part of it (206)."""
    headers: dict[str, str] = {}
    if byte_range is not None:
        start, end = byte_range
        if start < 0 or (end is not None and end < start):
            raise ValidationError(f"bad byte range {byte_range!r}")
        headers["Range"] = f"bytes={start}-{'' if end is None else end}"
    return Operation(
        endpoint("attachment"),
        {"app_id": _id(app_id, "app_id"), "result_id": _id(str(result_id), "result_id")},
        {"name": _id(name, "name")},
        headers=headers,
    )


def set_quality_control(slide_id: str, quality_control: s.QualityControl) -> Operation[None]:
    """``PUT /slides/{slide_id}/qualityControl`` (IA-API 1.10+); reuse the ``versionId`` from the slide info."""
    if not isinstance(quality_control, s.QualityControl):
        raise ValidationError("quality_control must be a QualityControl")
    return Operation(
        endpoint("quality_control"), {"slide_id": _id(slide_id, "slide_id")}, body=quality_control
    )


#: The operation builders every client exposes as a method of the same name and signature.
CLIENT_OPERATIONS = (
    get_info,
    get_image_metadata,
    get_image_infos_in_case,
    get_image_infos_in_case_by_slide_id,
    get_label_image,
    get_tile,
    get_application,
    create_results,
    get_result_by_result_id,
    get_all_results,
    update_results,
    get_attachment,
    set_quality_control,
)
