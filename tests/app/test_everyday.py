"""What an app developer meets in the first hour (#17 items 7, 8, 10), against the real mock."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import urllib3

from sectra_client import SectraClient
from sectra_client.app import AnalysisApp, create_app
from sectra_core import schemas as s
from sectra_core.config import Settings, debug_enabled, load_env_file, read_env_file
from sectra_core.errors import ConfigurationError, SectraError
from sectra_mock import MockSectraServer

Serve = Callable[..., Awaitable[str]]


def buggy_app() -> AnalysisApp:
    app = AnalysisApp(application_id="bug", display_name="Bug", manufacturer="Acme")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        result = None
        return result.polygons  # the classic first-hour bug: AttributeError

    return app


async def test_handler_errors_are_shown_against_the_mock(sectra_mock: MockSectraServer, serve_sectra_app: Serve,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    url = await serve_sectra_app(buggy_app())  # the fixture serves against the mock: development mode
    with pytest.raises(SectraError):
        await sectra_mock.aio.trigger(url, application_id="bug", slide_id="slide-1")
    assert "AttributeError: 'NoneType' object has no attribute 'polygons'" in caplog.text
    assert "withheld" not in caplog.text


async def test_production_still_withholds_the_message(sectra_mock: MockSectraServer, serve_sectra_app: Serve,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    url = await serve_sectra_app(buggy_app(), debug=False)
    with pytest.raises(SectraError):
        await sectra_mock.aio.trigger(url, application_id="bug", slide_id="slide-1")
    assert "AttributeError (message withheld" in caplog.text and "polygons" not in caplog.text
    assert "SECTRA_DEBUG=1" in caplog.text  # and says how to see it


def test_debug_switch_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECTRA_DEBUG", raising=False)
    assert create_app(buggy_app()).config["SECTRA_DEBUG"] is False  # production default
    monkeypatch.setenv("SECTRA_DEBUG", "1")
    assert create_app(buggy_app()).config["SECTRA_DEBUG"] is True
    assert create_app(buggy_app(), debug=False).config["SECTRA_DEBUG"] is False  # explicit wins
    assert debug_enabled(None, {"SECTRA_DEBUG": "yes"}) and not debug_enabled(None, {"SECTRA_DEBUG": "0"})


async def test_sync_trigger_inside_a_trio_test_points_at_aio(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    url = await serve_sectra_app(buggy_app())
    # Before: the blocking call froze the trio loop serving both mock and app, until its 30 s timeout.
    with pytest.raises(ConfigurationError, match=r"await mock\.aio\.trigger"):
        sectra_mock.trigger(url, application_id="bug", slide_id="slide-1")


def test_sync_app_fixture_and_healthz(sectra_mock_thread: MockSectraServer,
                                      serve_sectra_app_thread: Callable[..., str]) -> None:
    app = AnalysisApp(application_id="box", display_name="Box", manufacturer="Acme")

    @app.on_create
    def create(ctx):  # type: ignore[no-untyped-def]
        return ctx.store(s.Result(slide_id=ctx.slide_id, display_result="ok"))

    url = serve_sectra_app_thread(app)
    answer = sectra_mock_thread.trigger(url, application_id="box", slide_id="slide-1")
    assert [r.id for r in sectra_mock_thread.get_results("box", "slide-1")] == [answer.id]
    base = url.removesuffix("/sectra/app")
    health = urllib3.request("GET", f"{base}/healthz", retries=False)
    assert health.status == 200 and health.data == b"ok\n"


def test_help_shows_self_and_the_decoded_type() -> None:
    sig = inspect.signature(SectraClient.get_image_metadata)
    assert list(sig.parameters)[:2] == ["self", "slide_id"] and "ImageInfo" in str(sig.return_annotation)
    assert "Operation" not in str(sig)


def test_env_file_and_sectra_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# local development\n"
        "export SECTRA_URL=http://127.0.0.1:8001\n"
        "SECTRA_TOKEN='dev-token'\n"
        'SECTRA_TIMEOUT="5"  \n'
        "SECTRA_APPLICATION_ID=my-app # the id from the registration\n"
        "\n"
    )
    assert read_env_file(env)["SECTRA_APPLICATION_ID"] == "my-app"
    settings = Settings.from_env(env, environ={"SECTRA_URL": "http://127.0.0.1:9000"})  # the environment wins
    assert settings.url == "http://127.0.0.1:9000" and settings.token == "dev-token" and settings.timeout == 5.0
    assert settings.client_options() == {"read_timeout": 5.0, "connect_timeout": 5.0}
    assert "dev-token" not in repr(settings)
    target: dict[str, str] = {"SECTRA_TOKEN": "kept"}
    assert load_env_file(env, environ=target) and target["SECTRA_TOKEN"] == "kept"
    assert not load_env_file(tmp_path / "missing.env", environ=target)
    (tmp_path / "bad.env").write_text("SECTRA_TOKEN secret-value\n")
    with pytest.raises(ConfigurationError, match="line 1") as caught:
        read_env_file(tmp_path / "bad.env")
    assert "secret-value" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="SECTRA_TIMEOUT"):
        Settings.from_env(None, environ={"SECTRA_TIMEOUT": "soon"})


def test_env_file_reads_as_docker_compose_does(tmp_path: Path) -> None:
    """Quoted values with a trailing comment, escapes and interpolation read as every dotenv tool
    reads them (python-dotenv's ``dotenv_values``), not with the quotes kept."""
    env = tmp_path / ".env"
    env.write_text('A="x y" # note\nB=\'single # not a comment\'\nC=${A}-z\nD="line\\nbreak"\n')
    assert read_env_file(env) == {"A": "x y", "B": "single # not a comment", "C": "x y-z", "D": "line\nbreak"}
    (tmp_path / "bare.env").write_text("OK=1\nSECTRA_TOKEN\n")
    with pytest.raises(ConfigurationError, match="SECTRA_TOKEN has no"):
        read_env_file(tmp_path / "bare.env")
