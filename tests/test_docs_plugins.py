"""docs/plugins.md: each of its four examples, run as written, does what the page says."""

from __future__ import annotations

import logging
import re
import types
from pathlib import Path

import pytest

from sectra_client import SectraClient
from sectra_core.errors import HTTPStatusError, UnsupportedFeatureError
from sectra_core.plugins import Plugins, make_plugins
from sectra_mock import MockSectraServer
from tests.conftest import TOKEN

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def example(heading: str) -> types.ModuleType:
    """The python block under ``## heading``, executed as a plugin module."""
    section = DOC.split(f"## {heading}", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, heading
    module = types.ModuleType(f"docs_plugin_{abs(hash(heading))}")
    exec(compile(code.group(1), f"docs/plugins.md: {heading}", "exec"), module.__dict__)
    return module


def plugins_with(*modules: types.ModuleType) -> Plugins:
    return make_plugins(entry_points=False, extra=modules)


def test_adapter_and_mock_handler_examples() -> None:
    adapter = example("An adapter: a new IA-API version with one more endpoint")
    handler = example("A mock handler: the mock answers the new endpoint")
    alone = plugins_with(adapter)
    both = plugins_with(adapter, handler)
    with MockSectraServer(token=TOKEN, api_version="1.11", plugins=alone).run() as server:
        with SectraClient(server.url, TOKEN, plugins=alone) as client:
            with pytest.raises(HTTPStatusError, match="501"):
                client.send(adapter.get_barcode("slide-001"))  # routed, but no handler: 501
    with MockSectraServer(token=TOKEN, api_version="1.11", plugins=both).run() as server:
        with SectraClient(server.url, TOKEN, plugins=both) as client:
            assert client.adapter.name == "v5.1-barcode"
            assert client.send(adapter.get_barcode("slide-001")) == b"BC-slide-001"
        with SectraClient(server.url, TOKEN, plugins=both, api_version="v5.1-barcode") as pinned:
            assert pinned.send(adapter.get_barcode("slide-002")) == b"BC-slide-002"
        with SectraClient(server.url, TOKEN, plugins=both, api_version="5.0") as older:
            with pytest.raises(UnsupportedFeatureError, match="barcode"):
                older.send(adapter.get_barcode("slide-001"))


def test_transport_example(caplog: pytest.LogCaptureFixture, mock: MockSectraServer) -> None:
    timed = example("A transport: urllib3 that logs how long each request took")
    plugins = plugins_with(timed)
    caplog.set_level(logging.INFO, logger="timed_transport")
    with SectraClient(mock.url, TOKEN, plugins=plugins) as plain:
        plain.get_image_metadata("slide-x")
    assert not caplog.records  # installed, but not named: plain urllib3
    with SectraClient(mock.url, TOKEN, plugins=plugins, transport="timed-urllib3") as client:
        client.get_image_metadata("slide-x")
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("GET /slides/{slide_id}/info took ") for line in lines), lines
    assert not any("slide-x" in line for line in lines)  # the route, not the path


def test_job_runner_example() -> None:
    from sectra_transports.app.runners import ExecutorJobRunner, TrioJobRunner

    plugins = plugins_with(example("A job runner: a bigger thread pool for apps served by plain Quart"))
    runner = plugins.make_job_runner("asyncio")
    assert isinstance(runner, ExecutorJobRunner) and runner.executor._max_workers == 16  # type: ignore[attr-defined]
    assert isinstance(plugins.make_job_runner("trio"), TrioJobRunner)  # None from the plugin: the built-in
    assert type(make_plugins(entry_points=False).make_job_runner("asyncio")) is ExecutorJobRunner
