"""Tokens, passwords and PHI never reach logs, reprs or exception messages.

A busy session runs with every logger at DEBUG: client calls with PHI, retries, a wrong token,
a password login, an app whose handler and background job fail with patient data in the message.
Then the captured logs, reprs and error messages are searched for the secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
import pytest
import trio

from sectra_client.app import AnalysisApp, AsyncJob, TrioJobRunner
from sectra_core import schemas as s
from sectra_core.errors import SectraError
from sectra_core.retry import RetryPolicy
from sectra_core.sansio import Credentials
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient

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

    url = await serve_sectra_app(app)
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
    for secret in (TOKEN, PASSWORD, *PHI):
        assert secret not in everything, f"{secret!r} leaked"
