"""The blocking transport, on urllib3: pooled connections, timeouts, TLS verification on by default.

    from sectra_transports.urllib3 import SectraClient
"""

from __future__ import annotations

from collections.abc import Generator

import urllib3

from sectra_core.http import HttpRequest, HttpResponse
from sectra_core.transport import TransportOptions

from ._errors import map_exceptions
from ._sync import SectraClient

__all__ = ["Urllib3Transport", "SectraClient"]


class Urllib3Transport:
    """``handle_request`` over a urllib3 ``PoolManager``; bodies always stream (``preload_content=False``).

    Redirects and urllib3's own retries are off: the core decides what may be repeated.
    """

    def __init__(self, options: TransportOptions | None = None, *, pool: urllib3.PoolManager | None = None) -> None:
        self.options = options or TransportOptions()
        if pool is None:
            tls: dict[str, object] = {"cert_reqs": "CERT_REQUIRED"}
            if self.options.verify is False:
                tls = {"cert_reqs": "CERT_NONE"}
            elif isinstance(self.options.verify, str):
                tls["ca_certs"] = self.options.verify
            pool = urllib3.PoolManager(maxsize=self.options.pool_size, **tls)  # type: ignore[arg-type]
        self._pool = pool
        self._timeout = urllib3.Timeout(
            connect=self.options.connect_timeout, read=self.options.read_timeout
        )

    def handle_request(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; the response body is left on the wire for the caller to stream."""
        with map_exceptions():
            raw = self._pool.request(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                preload_content=False,
                redirect=False,
                retries=False,
                timeout=self._timeout,
            )
        stream = self._chunks(raw)
        headers = {k.lower(): v for k, v in raw.headers.itermerged()}
        return HttpResponse(raw.status, headers, stream=stream, closer=stream.close)

    def _chunks(self, raw: urllib3.BaseHTTPResponse) -> Generator[bytes, None, None]:
        size = self.options.chunk_size
        complete = False
        try:
            while True:
                with map_exceptions():
                    # read1: whatever has arrived (up to size), so a cut connection still
                    # delivers the bytes before the cut and errors can name the file.
                    chunk = raw.read1(size)
                if not chunk:
                    complete = True
                    return
                yield chunk
        finally:
            if complete:
                raw.release_conn()
            else:
                # Never drain a half-read multi-GB body just to reuse the connection.
                raw.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (retry backoff)."""
        import time

        time.sleep(seconds)

    def __enter__(self) -> Urllib3Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
