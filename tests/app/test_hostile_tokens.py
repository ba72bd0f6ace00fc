"""Issue 27: a callback token that cannot be an HTTP header value gets a 400 naming the problem.

Before: a line break, a non-ASCII character or an empty token reached the client, which failed
to build its ``Authorization`` header: a 500 from the app. Now the invocation is refused when it is
parsed, before the handler runs or anything connects, and the answer never quotes the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from sectra_mock import MockSectraServer
from tests.app.test_security import APP_ID, box, create_body, make_app, post

Serve = Callable[..., Awaitable[str]]


@pytest.mark.parametrize(("token", "problem"), [
    ("abc\r\nX-Evil: 1", "line break"),
    ("abc\ndef", "line break"),
    ("t\u00f6ken", "non-ASCII"),
    ("", "empty"),
    ("   ", "empty"),
    ("abc\x00def", "control character"),
    (" abc", "space"),
])
async def test_a_token_that_cannot_be_a_header_is_a_400(
    token: str, problem: str, sectra_mock: MockSectraServer, serve_sectra_app: Serve,
) -> None:
    app = make_app()
    calls: list[str] = []

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        calls.append(ctx.slide_id)
        return box(ctx.slide_id)

    url = await serve_sectra_app(app)
    status, body = await post(url, create_body(sectra_mock.url, token=token))
    assert status == 400, body
    assert b"callbackInfo.token" in body and problem.encode() in body
    if token.strip():
        assert token.encode("utf-8") not in body  # never quoted back
    assert calls == []


async def test_a_good_token_still_reaches_the_handler(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return box(ctx.slide_id)

    url = await serve_sectra_app(app)
    status, body = await post(url, create_body(sectra_mock.url, token=sectra_mock.token))
    assert status == 200, body
    assert APP_ID
