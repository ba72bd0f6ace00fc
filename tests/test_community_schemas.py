"""Drop-in for ``sectra-image-analysis-api``: its ``sectra_client.schemas`` imports work, the
renamed names warn once with their new name, and its quickstart's calls run against the mock."""

from __future__ import annotations

import importlib
import warnings

import pytest

import sectra_client
from sectra_client import SectraClient
from sectra_client.mock_server import MockSectraServer
from sectra_core import schemas as core


def test_schemas_is_a_module_with_the_documented_submodules() -> None:
    schemas = importlib.import_module("sectra_client.schemas")
    assert sectra_client.schemas is schemas
    for short in ("common", "image", "info", "invocation", "quality_control", "registration", "results"):
        module = importlib.import_module(f"sectra_client.schemas.{short}")
        for name in module.__all__:
            assert getattr(module, name) is getattr(core, name)
    from sectra_client.schemas import Registration, Result  # noqa: F401
    from sectra_client.schemas.results import PrimitiveItem, ResultData  # noqa: F401
    assert Result is core.Result


@pytest.mark.parametrize(("module", "old", "new"), [
    ("sectra_client.schemas.results", "PrimitiveResultContent", "PrimitiveResult"),
    ("sectra_client.schemas.results", "PatchResultContent", "PatchCollectionResult"),
    ("sectra_client.schemas.common", "DisplayedName", "DisplayName"),
    ("sectra_client.schemas.invocation", "NewImageFilesInvocation", "ImageNotification"),
    ("sectra_client.schemas", "QualityControlStatus", "QualityStatus"),
])
def test_an_old_name_warns_once_with_its_new_name(module: str, old: str, new: str) -> None:
    mod = importlib.import_module(module)
    import sectra_client.schemas as schemas
    schemas._warned.discard(f"{module}.{old}")  # another test may have used the name first
    with pytest.warns(DeprecationWarning, match=f"{old}.*now sectra_client.schemas.{new}"):
        value = getattr(mod, old)
    assert value is getattr(core, new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(mod, old) is value  # once: the second use is silent


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(ImportError):
        from sectra_client.schemas.results import NoSuchThing  # noqa: F401


def test_quickstart_calls_with_the_old_schema_imports() -> None:
    from sectra_client.schemas import Point, Polygon
    from sectra_client.schemas.results import PrimitiveItem, Result, ResultData
    with pytest.warns(DeprecationWarning):
        import sectra_client.schemas as schemas
        schemas._warned.discard("sectra_client.schemas.results.PrimitiveResultContent")
        from sectra_client.schemas.results import PrimitiveResultContent

    server = MockSectraServer(token="dev-token")
    with server.run(port=0):
        with SectraClient(url=server.url, token="dev-token") as client:
            info = client.get_image_metadata("slide-001", extended=True, phi=False)
            outline = Polygon(points=[Point(x=0.1, y=0.1), Point(x=0.2, y=0.1), Point(x=0.2, y=0.2)])
            result = Result(slide_id="slide-001", display_result="1 region", application_version="1.0",
                            data=ResultData(result=PrimitiveResultContent(content=[PrimitiveItem(polygons=[outline])])))
            stored = client.create_results("my-app", result)
        results = server.get_results(app_id="my-app", slide_id="slide-001")
    assert info.id == "slide-001"
    assert [r.id for r in results] == [stored.id]
    assert results[0].data.result.content[0].polygons == [outline]
