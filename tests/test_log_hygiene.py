"""Tokens, passwords and PHI never reach logs, reprs (rich's included) or exception messages.

A busy session runs with every logger at DEBUG: client calls with PHI, retries, a wrong token,
a password login, an app whose handler and background job fail with patient data in the message.
Then the captured logs, reprs and error messages are searched for the secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import msgspec
import pytest
import trio

from sectra_client.app import AnalysisApp, AsyncJob, TrioJobRunner
from sectra_core import schemas as s
from sectra_client import SectraClient
from sectra_core.errors import SectraError, ServerError
from sectra_core.http import HttpRequest
from sectra_core.retry import RetryPolicy
from sectra_core.flows import Credentials
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import RawServer

TOKEN = "tok-7f3a9c-SECRET"
PASSWORD = "pw-SECRET-4711"
PHI = ("Doe^Jane", "19121212-1212", "ACC-PHI-998877", "T25-PHI-00042")
FAST = RetryPolicy(backoff=0.01, max_backoff=0.02)


async def test_no_secret_or_phi_anywhere(start_sectra_mock: Callable[..., Awaitable[MockSectraServer]],
                                         serve_sectra_app: Callable[..., Awaitable[str]],
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mock = await start_sectra_mock(token=TOKEN, users={"ann": PASSWORD})
    info = msgspec.structs.replace(
        mock.image_info("slide-001"), accession_number=PHI[2], lis_slide_id=PHI[3],
        exam_free_fields=[{"name": "Patient", "value": PHI[0]}, {"name": "PID", "value": PHI[1]}],
    )
    mock.add_slide(info)
    seen: list[str] = []

    async with AsyncSectraClient(mock.url, TOKEN, retry=FAST) as client:
        mock.faults.add("status", "image_info", status=503, times=2)
        got = await client.get_image_metadata("slide-001", extended=True, phi=True)
        assert got.accession_number == PHI[2]
        seen += [repr(client), repr(got), repr(mock.build_create("app", "slide-001"))]
    async with AsyncSectraClient(mock.url, "wrong-" + TOKEN, retry=FAST) as bad:
        with pytest.raises(SectraError) as caught:
            await bad.get_info()
        seen.append(str(caught.value))
    async with AsyncSectraClient.from_credentials(mock.url, "ann", PASSWORD, "app") as login:
        await login.get_info()
        seen.append(repr(login))
    seen.append(repr(Credentials("ann", PASSWORD, "app")))

    runner = TrioJobRunner()
    app = AnalysisApp(application_id="app", display_name="A", manufacturer="M", job_runner=runner)

    async def work(job: AsyncJob) -> s.Result:
        i = await job.client.get_image_metadata(job.slide_id, phi=True)
        raise RuntimeError(f"no tissue for {i.accession_number} {PHI[0]}")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return await ctx.start_job(work)

    @app.on_modify
    async def modify(ctx):  # type: ignore[no-untyped-def]
        i = await ctx.client.get_image_metadata(ctx.slide_id, phi=True)
        raise KeyError(f"{i.lis_slide_id} {PHI[1]}")

    url = await serve_sectra_app(app, debug=False)  # production logging (the fixture's default is development)
    stored = await mock.aio.trigger(url, application_id="app", slide_id="slide-001")
    with trio.fail_after(10):
        await runner.join()
    with pytest.raises(SectraError) as caught:
        await mock.aio.modify(url, stored, application_id="app")
    seen.append(str(caught.value))
    [final] = mock.get_results("app", "slide-001")
    assert final.display_result == "Analysis failed (RuntimeError)"
    seen.append(s.encode(final).decode())

    everything = caplog.text + "\n".join(seen)
    assert "503" in caplog.text and "RuntimeError" in caplog.text  # the logs did record the events
    assert ", in modify" in caplog.text and ", in work" in caplog.text  # with where it failed
    for secret in (TOKEN, mock.app_token("app"), PASSWORD, *PHI):  # app_token: the app's callback token
        assert secret not in everything, f"{secret!r} leaked"


SESSION = "sess-SECRET-0042"


def test_sync_client_urllib3_debug_retries_and_errors(raw_server: RawServer, caplog: pytest.LogCaptureFixture) -> None:
    """urllib3 logs every request line at DEBUG: an external launch's session token and an
    accession number in a path went there, into retry INFO lines, and (with the server's error
    body) into exception messages (issue #12, hole 6)."""
    caplog.set_level(logging.DEBUG)
    launch = {"callbackInfo": {"url": raw_server.url, "token": TOKEN}, "blocks": [{"name": "A", "slides": [{"id": "s1"}]}]}
    raw_server.route("/launchdata", 200, {"Content-Type": "application/json"}, json.dumps(launch).encode())
    raw_server.route(f"/requests/{PHI[2]}/images/info", 503, {"Content-Type": "application/json"},
                     f'{{"error": "case {PHI[2]} of {PHI[0]} is busy"}}'.encode())
    url = f"{raw_server.url}/launchdata?requestId={PHI[2]}&sessionToken={SESSION}"
    client, data = SectraClient.from_launch_url(url, "app", retry=FAST)
    with client, pytest.raises(ServerError) as caught:
        client.get_image_infos_in_case(PHI[2], phi=True)
    assert data.blocks[0].slides[0].id == "s1"
    assert raw_server.requests[0][0] == "/launchdata"  # the token did go where the spec puts it (§4.3)
    everything = caplog.text + str(caught.value) + repr(caught.value)
    for secret in (TOKEN, SESSION, PHI[0], PHI[2]):
        assert secret not in everything, f"{secret!r} leaked"
    assert "urllib3.connectionpool" in caplog.text and '"GET /launchdata HTTP/1.1" 200' in caplog.text
    assert "/requests/{accession_number}/images/info: HTTP 503; try 2 of 4" in caplog.text  # the retry line


def test_rich_repr_is_redacted() -> None:
    """rich prefers ``__rich_repr__`` to ``__repr__``, and msgspec gives every Struct one that
    lists all fields: ``rich.print(info)`` showed PHI and tokens. rich is not installed here, so
    the protocol is called as rich calls it."""
    info = s.ImageInfo(id="s", is_streamable=True, image_size=s.Size(width=1, height=1), tile_size=s.Size(width=1, height=1),
                       accession_number=PHI[2], lis_slide_id=PHI[3], exam_free_fields=[{"name": "Patient", "value": PHI[0]}])
    callback = s.CallbackInfo(url="https://pacs.example/ia", token=TOKEN)
    launch = s.LaunchResponse(callback_info=callback, blocks=[])
    token = s.Token(access_token=TOKEN, expires_in=60)
    request = HttpRequest("GET", f"https://pacs.example/ia/requests/{PHI[2]}/images/info",
                          {"Authorization": f"Bearer {TOKEN}"}, route="/requests/{accession_number}/images/info")
    for value in (info, callback, launch, token, request):
        shown = repr(list(value.__rich_repr__()))
        for secret in (TOKEN, *PHI):
            assert secret not in shown, f"{secret!r} in the rich repr of {type(value).__name__}"
    assert ("id", "s") in list(info.__rich_repr__()) and ("accession_number", "<redacted>") in list(info.__rich_repr__())
