"""docs/app-guide.md's app is real: its code block is executed, served, and checked by the mock."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sectra_mock import MockSectraServer

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "app-guide.md"


def guide_app() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    source = next(b for b in blocks if b.startswith("# myapp.py"))
    namespace: dict[str, Any] = {}
    exec(compile(source, "app-guide:myapp.py", "exec"), namespace)
    return namespace["app"]


async def test_the_guides_app_passes_the_check(sectra_mock: MockSectraServer, serve_sectra_app: Callable[..., Awaitable[str]]) -> None:
    app = guide_app()
    url = await serve_sectra_app(app, url_prefix="/cell-count")
    report = await sectra_mock.aio.check_app(url, slide_id="slide-001")
    assert report.ok, report.problems
    assert report.info is not None and (report.info.api_version, report.info.software_version) == ("1.8", "1.0.0")
    [stored] = sectra_mock.get_results(app.application_id, "slide-001")
    assert stored.display_result == "1234 cells" and stored.display_properties == {"Cells": 1234}
    points = stored.data.result.content[0].polygons[0].points  # type: ignore[union-attr]
    assert max(p.y for p in points) <= sectra_mock.image_info("slide-001").max_y
