"""The trio client, bound to its transport (HTTP/1.1 over trio streams, pooled, with timeouts as
cancel scopes; no threads).

    from sectra_transports.trio import AsyncSectraClient

The transport itself lives in :mod:`sectra_transports._trio_transport` and imports no client.
"""

from __future__ import annotations

from ._dicomweb_async import AsyncDicomWebClient
from ._async import AsyncSectraClient
from ._remote_slide import AsyncRemoteSlide
from ._trio_transport import TrioTransport

__all__ = ["AsyncDicomWebClient", "TrioTransport", "AsyncSectraClient", "AsyncRemoteSlide"]
