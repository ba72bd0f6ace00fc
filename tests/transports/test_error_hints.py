"""Errors that say what to do (issue #29): both clients against the real mock on loopback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sectra_core import errors
from sectra_mock import MockSectraServer
from tests.conftest import TOKEN


@pytest.fixture
def strict_mock() -> Any:
    """A mock that knows only its demo slides: an unknown slide id is a 404, as on a real server."""
    server = MockSectraServer(token=TOKEN)
    with server.run(port=0):
        yield server


def test_unknown_slide_names_the_slide(make_client: Any, strict_mock: MockSectraServer) -> None:
    client = make_client(strict_mock)
    with pytest.raises(errors.NotFoundError) as caught:
        client.get_image_metadata("no-such-slide-42")
    text = str(caught.value)
    assert "slide 'no-such-slide-42' is not on this server" in text, text
    assert caught.value.status == 404 and TOKEN not in text


def test_refused_token_says_why(make_client: Any, strict_mock: MockSectraServer) -> None:
    client = make_client(strict_mock, token="wrong-token-xyz")
    with pytest.raises(errors.AuthenticationError) as caught:
        client.get_image_metadata("slide-001")
    text = str(caught.value)
    assert "refused the token" in text and "expired" in text and "another application" in text, text
    assert "another Sectra server" in text and "wrong-token-xyz" not in text


def test_wrong_base_path_names_the_path_tried(make_client: Any, strict_mock: MockSectraServer) -> None:
    client = make_client(SimpleNamespace(url=strict_mock.url + "/wrong/api"))
    with pytest.raises(errors.NotFoundError) as caught:
        client.get_image_metadata("slide-001")
    text = str(caught.value)
    assert f"{strict_mock.url}/wrong/api/info" in text and "base path looks wrong" in text, text
    assert "slide 'slide-001' is not on this server" not in text  # the slide is not the problem


def test_tls_to_a_plain_http_server_says_so(make_client: Any, strict_mock: MockSectraServer) -> None:
    https = strict_mock.url.replace("http://", "https://")
    client = make_client(SimpleNamespace(url=https), retry=None)
    with pytest.raises(errors.ConnectError) as caught:
        client.get_image_metadata("slide-001")
    text = str(caught.value)
    assert "answered plain HTTP" in text and "use http://" in text and "check the port" in text, text
    assert https.removeprefix("https://").split("/")[0] in text  # names the server it tried


@pytest.mark.parametrize("status", [401, 403, 404])
def test_hints_never_quote_accession_numbers(status: int) -> None:
    hint = errors.status_hint(status, "/requests/{accession_number}/images/info", {"accession_number": "ACC-123"},
                              base_url="https://user:pw@pacs.example/api?x=1", info_status=None)
    assert "ACC-123" not in hint and "pw" not in hint
    wrong = errors.status_hint(404, "/slides/{slide_id}/info", {"slide_id": "s"},
                               base_url="https://user:pw@pacs.example/api?x=1", info_status=404)
    assert "https://pacs.example/api/info" in wrong and "pw" not in wrong and "x=1" not in wrong
