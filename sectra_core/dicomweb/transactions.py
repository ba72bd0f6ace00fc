"""DICOMweb calls as sans-IO flows (the same shape as :mod:`sectra_core.flows`): each yields
:class:`~sectra_core.http.HttpRequest` values and :class:`~sectra_core.retry.Sleep`, is sent the
answers, and returns the decoded result. The clients of :mod:`sectra_transports` drive them.

Retries follow :func:`sectra_core.retry.exchange`: QIDO and WADO (GET) are repeated after a
dropped connection, a timeout or a 429/5xx; a STOW (POST) only after a refused connection, which
cannot have stored anything.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..errors import ConfigurationError, status_error
from ..http import HttpRequest, HttpResponse, ResponseLimits
from ..retry import RetryPolicy, Sleep, exchange
from ..urls import normalize_base_url
from .json import Dataset, decode_datasets
from .query import Level, Query, search_path
from .stow import StowBody, StowResult, parse_stow_answer
from .wado import instance_path, split_instances

__all__ = ["DicomWebState", "DicomWebFlow", "search", "retrieve_metadata", "retrieve_instances", "store"]

#: A DICOMweb flow yields requests and sleeps and returns ``T``.
DicomWebFlow = Generator["HttpRequest | Sleep", Any, Any]


class DicomWebState:
    """One DICOMweb service root and how to authenticate to it.

    ``url``: the service root (``https://pacs/dicom-web``); plain http only to loopback unless
    ``allow_http`` (credentials must not cross a network in clear text). ``username``/``password``
    for HTTP Basic (as Sectra's own QIDO client), or ``token`` for a bearer token; neither is ever
    shown in a repr or message. ``retry``, ``limits`` and ``clock`` as for the IA-API client.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        allow_http: bool = False,
        retry: RetryPolicy | None = None,
        limits: ResponseLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = normalize_base_url(url, allow_http=allow_http)
        if token is not None and username is not None:
            raise ConfigurationError("DICOMweb: a bearer token or a username and password, not both")
        headers: dict[str, str] = {}
        if token is not None:
            if not token or any(ch in token for ch in "\r\n"):
                raise ConfigurationError("DICOMweb: the bearer token is empty or holds a line break")
            headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            raw = f"{username}:{password or ''}".encode()
            if b"\r" in raw or b"\n" in raw:
                raise ConfigurationError("DICOMweb: the username or password holds a line break")
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        self._auth = headers
        self.retry = retry if retry is not None else RetryPolicy()
        self.limits = limits if limits is not None else ResponseLimits.from_env()
        self.clock = clock

    def __repr__(self) -> str:
        auth = "with credentials" if self._auth else "anonymous"
        return f"DicomWebState({self.base_url!r}, {auth})"

    def request(self, method: str, path: str, route: str, accept: str, *, extra: dict[str, str] | None = None,
                **kwargs: Any) -> HttpRequest:
        """A request to ``path`` below the root; ``route`` is what logs and errors show."""
        headers = self._auth | {"Accept": accept} | (extra or {})
        return HttpRequest(method, self.base_url + path, headers, route=route, **kwargs)


def _check(response: HttpResponse, request: HttpRequest) -> None:
    if not 200 <= response.status < 300:
        raise status_error(response.status, request.method, request.shown, response.body)


def search(state: DicomWebState, level: Level, query: Query | None = None, *, study_uid: str | None = None,
           series_uid: str | None = None) -> Generator[HttpRequest | Sleep, Any, list[Dataset]]:
    """QIDO-RS: the datasets matching ``query`` at ``level`` (within a study/series when given)."""
    path, route = search_path(level, study_uid, series_uid)
    text = (query or Query()).query_string()
    request = state.request("GET", path + ("?" + text if text else ""), "QIDO " + route, "application/dicom+json")
    response = yield from exchange(request, state.retry, state.clock)
    if response.status == 204:
        return []
    _check(response, request)
    return decode_datasets(response.body, f"GET {request.shown}", response.header("content-type"))


def retrieve_metadata(state: DicomWebState, study_uid: str, series_uid: str,
                      instance_uid: str | None = None) -> Generator[HttpRequest | Sleep, Any, list[Dataset]]:
    """WADO-RS metadata of a series' instances (or of one instance)."""
    path, route = instance_path(study_uid, series_uid, instance_uid)
    request = state.request("GET", path + "/metadata", f"WADO {route}/metadata", "application/dicom+json")
    response = yield from exchange(request, state.retry, state.clock)
    _check(response, request)
    return decode_datasets(response.body, f"GET {request.shown}", response.header("content-type"))


def retrieve_instances(state: DicomWebState, study_uid: str, series_uid: str,
                       instance_uid: str | None = None) -> Generator[HttpRequest | Sleep, Any, list[bytes]]:
    """WADO-RS: the Part 10 files of a series (or one instance), as sent (transfer syntax kept).

    Held in memory within the client's binary limit (256 MiB by default, ``SECTRA_MAX_BINARY_BYTES``).
    """
    path, route = instance_path(study_uid, series_uid, instance_uid)
    request = state.request(
        "GET", path, f"WADO {route}", 'multipart/related; type="application/dicom"; transfer-syntax=*', binary=True,
    )
    response = yield from exchange(request, state.retry, state.clock)
    _check(response, request)
    return split_instances(response.header("content-type"), response.body, f"GET {request.shown}")


def store(state: DicomWebState, files: Sequence[Any] | StowBody, *,
          study_uid: str | None = None) -> Generator[HttpRequest | Sleep, Any, StowResult]:
    """STOW-RS: send the files (streamed, see :class:`StowBody`); every instance must be confirmed
    stored, else :class:`~sectra_core.dicomweb.exceptions.StowError` says which were and which not."""
    body = files if isinstance(files, StowBody) else StowBody(files)
    path, route = ("/studies", "/studies") if study_uid is None else (
        search_path("series", study_uid)[0].rsplit("/", 1)[0], "/studies/{study}")
    request = state.request(
        "POST", path, "STOW " + route, "application/dicom+json",
        extra={"Content-Type": body.content_type}, upload=body, idempotent=False,
    )
    response = yield from exchange(request, state.retry, state.clock)
    return parse_stow_answer(
        response.status, response.header("content-type"), response.body, body.instances, what=f"POST {request.shown}"
    )
