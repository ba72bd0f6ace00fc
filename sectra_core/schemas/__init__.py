"""msgspec Structs for every IA-API wire message (spec §5), one Struct per message.

All share :class:`WireStruct`: camelCase on the wire, keyword-only construction, defaults omitted
on output, unknown fields ignored on input.
"""

from ._base import WireStruct, decode, decoder, encode, unknown_fields
from .common import ApplicationInfo, CallbackInfo, DisplayName, Point, Polygon, Size
from .images import (
    EXTENDED_FIELDS,
    PHI_FIELDS,
    CaseImageInfo,
    FileFormat,
    FocalPlane,
    ImageInfo,
    ImageMetadata,
    LabelImage,
    OpticalPath,
    QualityControl,
    QualityControlData,
    QualityStatus,
    Specimen,
    TileFormat,
)
from .invocations import (
    CancelInvocation,
    CreateInput,
    CreateInvocation,
    DeleteInvocation,
    ImageNotification,
    Invocation,
    ModifyInvocation,
    MultiAreaContent,
    MultiAreaInput,
    TaggedPolygonContent,
    TaggedPolygonInput,
    WholeSlideInput,
)
from .registration import (
    Application,
    InputTemplate,
    InputTemplateContent,
    InputType,
    LaunchBlock,
    LaunchResponse,
    LaunchSlide,
    Registration,
    Token,
)
from .results import (
    Arc,
    Attachment,
    AttachmentState,
    Label,
    Patch,
    PatchAction,
    PatchCollectionResult,
    PatchContent,
    PatchStatus,
    PrimitiveItem,
    PrimitiveResult,
    Polyline,
    Result,
    ResultContent,
    ResultData,
    ResultResponse,
    ResultUpdate,
    Style,
)

__all__ = [
    "WireStruct", "decode", "decoder", "encode", "unknown_fields",
    "ApplicationInfo", "CallbackInfo", "DisplayName", "Point", "Polygon", "Size",
    "EXTENDED_FIELDS", "PHI_FIELDS", "CaseImageInfo", "FileFormat", "FocalPlane", "ImageInfo",
    "ImageMetadata", "LabelImage", "OpticalPath", "QualityControl", "QualityControlData",
    "QualityStatus", "Specimen", "TileFormat",
    "CancelInvocation", "CreateInput", "CreateInvocation", "DeleteInvocation", "ImageNotification",
    "Invocation", "ModifyInvocation", "MultiAreaContent", "MultiAreaInput", "TaggedPolygonContent",
    "TaggedPolygonInput", "WholeSlideInput",
    "Application", "InputTemplate", "InputTemplateContent", "InputType", "LaunchBlock",
    "LaunchResponse", "LaunchSlide", "Registration", "Token",
    "Arc", "Attachment", "AttachmentState", "Label", "Patch", "PatchAction", "PatchCollectionResult",
    "PatchContent", "PatchStatus", "PrimitiveItem", "PrimitiveResult", "Polyline", "Result",
    "ResultContent", "ResultData", "ResultResponse", "ResultUpdate", "Style",
]
