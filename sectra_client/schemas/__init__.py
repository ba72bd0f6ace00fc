"""The community package ``sectra-image-analysis-api``'s ``sectra_client.schemas``, as a drop-in.

Every name of :mod:`sectra_core.schemas` is here unchanged. The submodules that package documents
(``common``, ``image``, ``info``, ``invocation``, ``quality_control``, ``registration``,
``results``) import too; they are registered here rather than kept as files so that no two modules
of the project share a name. A name that package used and this SDK renamed still works, and warns
once (DeprecationWarning) with its new name; see docs/app-guide.md, "Coming from
sectra-image-analysis-api".
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import sectra_core.schemas as _core
from sectra_core.schemas import *  # noqa: F403

#: The community package's name -> this SDK's name, for the names that changed.
RENAMED: dict[str, str] = {
    "DisplayedName": "DisplayName",
    "NewImageFilesInvocation": "ImageNotification",
    "QualityControlStatus": "QualityStatus",
    "TaggedPolygonInputContent": "InputTemplateContent",
    "PrimitiveResultContent": "PrimitiveResult",
    "PatchResultContent": "PatchCollectionResult",
    "Status": "PatchStatus",
}

#: Submodule -> (names kept, {old name: new name}) as the community package laid them out.
_SUBMODULES: dict[str, tuple[list[str], dict[str, str]]] = {
    "common": (["CallbackInfo", "InputType", "Point", "Polygon", "Size"], {"DisplayedName": "DisplayName"}),
    "image": (["FocalPlane", "OpticalPath", "TileFormat", "Specimen", "ImageMetadata", "CaseImageInfo",
               "LabelImage"], {}),
    "info": (["ApplicationInfo"], {}),
    "invocation": (["TaggedPolygonContent", "MultiAreaContent", "WholeSlideInput", "TaggedPolygonInput",
                    "MultiAreaInput", "CreateInput", "CreateInvocation", "ModifyInvocation", "CancelInvocation",
                    "DeleteInvocation", "Invocation"], {"NewImageFilesInvocation": "ImageNotification"}),
    "quality_control": (["QualityControlData", "QualityControl"], {"QualityControlStatus": "QualityStatus"}),
    "registration": (["InputTemplate", "Registration"], {"TaggedPolygonInputContent": "InputTemplateContent"}),
    "results": (["Style", "Polyline", "Label", "PrimitiveItem", "Patch", "PatchContent", "ResultContent",
                 "ResultData", "AttachmentState", "Attachment", "Result", "ResultResponse"],
                {"PrimitiveResultContent": "PrimitiveResult", "PatchResultContent": "PatchCollectionResult",
                 "Status": "PatchStatus", "Action": "PatchAction"}),
}

__all__ = list(_core.__all__)  # the old names stay out of ``import *``: they warn when used

_warned: set[str] = set()


def _renamed(module: str, old: str, new: str) -> Any:
    """This SDK's ``new``, warning once per process that ``module.old`` is its old name."""
    key = f"{module}.{old}"
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"{key} (sectra-image-analysis-api) is now sectra_client.schemas.{new}; "
                      f"import that name instead", DeprecationWarning, stacklevel=3)
    return getattr(_core, new)


def __getattr__(name: str) -> Any:
    """Old names of the community package, with a DeprecationWarning naming the new one."""
    if name in RENAMED:
        return _renamed(__name__, name, RENAMED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _submodule(short: str, kept: list[str], renamed: dict[str, str]) -> types.ModuleType:
    """A module object ``sectra_client.schemas.<short>`` holding the community package's names."""
    full = f"{__name__}.{short}"
    module = types.ModuleType(full, f"``{short}`` of sectra-image-analysis-api: names of sectra_core.schemas.")
    for name in kept:
        setattr(module, name, getattr(_core, name))
    module.__all__ = list(kept)  # type: ignore[attr-defined]

    def old_name(name: str) -> Any:
        if name in renamed:
            return _renamed(full, name, renamed[name])
        raise AttributeError(f"module {full!r} has no attribute {name!r}")

    module.__getattr__ = old_name  # type: ignore[method-assign]
    return module


for _short, (_kept, _old) in _SUBMODULES.items():
    _mod = _submodule(_short, _kept, _old)
    sys.modules[_mod.__name__] = _mod
    globals()[_short] = _mod
