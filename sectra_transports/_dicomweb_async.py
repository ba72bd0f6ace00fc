"""The DICOMweb client, written once for trio; ``scripts/unasync.py`` generates the blocking
``_dicomweb_sync.py`` from it. Import the trio client from :mod:`sectra_transports.trio`, the blocking
one from :mod:`sectra_transports.urllib3` (or ``sectra_client``).

The protocol (paths, query, DICOM JSON, the streamed STOW body and its answer) is the core's
:mod:`sectra_core.dicomweb`; this client only drives its flows over the SDK's transports, so
retries, proxy, timeouts, TLS verification and the answer size limits are the IA-API client's.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

from sectra_core.dicomweb import transactions
from sectra_core.dicomweb.transactions import DicomWebState
from sectra_core.dicomweb.json import Dataset
from sectra_core.dicomweb.query import Level, Query
from sectra_core.dicomweb.stow import StowBody, StowResult
from sectra_core.errors import TransportError
from sectra_core.http import BodyReader, HttpRequest, HttpResponse, ResponseLimits, check_whole_body
from sectra_core.plugins import Plugins, default_plugins
from sectra_core.retry import RetryPolicy, Sleep
from sectra_core.transport import AsyncTransport, TransportOptions

from ._clocks import AsyncClock, AsyncTransportClock
from ._feed import async_close_response

__all__ = ["AsyncDicomWebClient"]

T = TypeVar("T")


class AsyncDicomWebClient:
    """A client for one DICOMweb service root (QIDO-RS, WADO-RS, STOW-RS).

    ``username``/``password``: HTTP Basic (as Sectra's own QIDO client); ``token``: a bearer token.
    ``verify``, ``connect_timeout``, ``read_timeout``, ``proxy``, ``allow_http``, ``transport``,
    ``plugins``, ``retry``, ``limits`` and ``clock`` mean what they mean for ``AsyncSectraClient``.
    Nothing is sent by the constructor; use ``async with`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify: bool | str = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        proxy: str | None = None,
        allow_http: bool = False,
        transport: AsyncTransport | str | None = None,
        plugins: Plugins | None = None,
        retry: RetryPolicy | None = None,
        limits: ResponseLimits | None = None,
        clock: AsyncClock | None = None,
    ) -> None:
        plugins = plugins or default_plugins()
        options = TransportOptions(verify=verify, connect_timeout=connect_timeout, read_timeout=read_timeout, proxy=proxy)
        self._transport = plugins.async_transport(transport, options)
        self._clock: AsyncClock = clock if clock is not None else AsyncTransportClock(self._transport)
        self._state = DicomWebState(
            url, username=username, password=password, token=token, allow_http=allow_http,
            retry=retry, limits=limits, clock=self._clock.now,
        )

    def __repr__(self) -> str:
        return f"AsyncDicomWebClient({self._state.base_url!r})"

    async def __aenter__(self) -> AsyncDicomWebClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections. The client must not be used afterwards."""
        await self._transport.aclose()

    @property
    def url(self) -> str:
        """The normalised service root."""
        return self._state.base_url

    # --- calls ----------------------------------------------------------------------------------

    async def search(
        self, level: Level = "studies", query: Query | None = None, *, study_uid: str | None = None,
        series_uid: str | None = None, **match: Any,
    ) -> list[Dataset]:
        """QIDO-RS: ``await client.search("series", patient_id="P1")``. Keyword arguments build a
        :class:`~sectra_core.dicomweb.query.Query` when ``query`` is not given."""
        if query is None:
            query = Query(**match)
        elif match:
            raise TypeError("give a Query or keyword arguments, not both")
        return await self._drive(transactions.search(self._state, level, query, study_uid=study_uid, series_uid=series_uid))

    async def retrieve_metadata(self, study_uid: str, series_uid: str, instance_uid: str | None = None) -> list[Dataset]:
        """WADO-RS: the DICOM JSON metadata of a series' instances, or of one instance."""
        return await self._drive(transactions.retrieve_metadata(self._state, study_uid, series_uid, instance_uid))

    async def retrieve_instances(self, study_uid: str, series_uid: str, instance_uid: str | None = None) -> list[bytes]:
        """WADO-RS: the Part 10 files of a series, or of one instance (read with ``pydicom.dcmread``)."""
        return await self._drive(transactions.retrieve_instances(self._state, study_uid, series_uid, instance_uid))

    async def store(self, files: Sequence[str | os.PathLike[str]], *, study_uid: str | None = None) -> StowResult:
        """STOW-RS: send Part 10 files in one request, streamed from disk (one chunk in memory).

        Returns the stored SOP Instance UIDs once the server confirmed every one; otherwise raises
        :class:`~sectra_core.dicomweb.exceptions.StowError` with ``stored`` and ``failed``. Sent once:
        repeated only after a connection that was refused (nothing can have been stored).
        """
        return await self._drive(transactions.store(self._state, StowBody(files), study_uid=study_uid))

    # --- driving the core's flows -----------------------------------------------------------------

    async def _exchange(self, request: HttpRequest) -> HttpResponse:
        response = await self._transport.handle_async_request(request)
        if response.stream is None:
            check_whole_body(request, response, self._state.limits)
            response.closer = None
            return response
        try:
            reader = BodyReader(request, response, self._state.limits)
            async for chunk in response.stream:  # type: ignore[union-attr]
                if reader.feed(chunk):
                    break
        finally:
            await async_close_response(response)
        response.body = reader.body()
        response.stream = None
        response.closer = None
        return response

    async def _drive(self, flow: Generator[HttpRequest | Sleep, Any, T]) -> T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self._clock.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response = await self._exchange(step)
                except TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as stop:
            return stop.value
