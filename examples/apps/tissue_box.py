"""A tiny analysis app: on ``create``, outline the central half of the slide and label it.

Written against the async client; the webhook server around it is left to the app's framework.
The test in ``docs/testing.md`` (also ``tests/test_docs_testing.py``) drives it with the mock.
"""

from __future__ import annotations

from sectra_core import schemas as s
from sectra_transports.trio import AsyncSectraClient

APP_VERSION = "1.0.0"


async def handle_create(invocation: s.CreateInvocation) -> s.ResultResponse:
    """Read the slide's size, store one primitive result, return it (Sectra wants the stored id)."""
    cb = invocation.callback_info
    async with AsyncSectraClient(url=cb.url, token=cb.token, app_version=APP_VERSION) as client:
        info = await client.get_image_metadata(invocation.slide_id)
        max_y = info.max_y  # both axes are divided by the width (spec §2.4)
        corners = [(0.25, 0.25 * max_y), (0.75, 0.25 * max_y), (0.75, 0.75 * max_y), (0.25, 0.75 * max_y)]
        text = f"{info.image_size.width}x{info.image_size.height} px"
        result = s.Result(
            slide_id=invocation.slide_id,
            display_result=text,
            application_version=APP_VERSION,
            data=s.ResultData(result=s.PrimitiveResult(content=[s.PrimitiveItem(
                polygons=[s.Polygon(points=[s.Point(x=x, y=y) for x, y in corners])],
                labels=[s.Label(location=s.Point(x=0.25, y=0.25 * max_y), label=text)],
            )])),
        )
        return await client.create_results(invocation.application_id, result)
