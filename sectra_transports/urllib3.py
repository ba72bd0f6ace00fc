"""The blocking client, bound to its transport (urllib3: pooled connections, timeouts, TLS
verification on by default).

    from sectra_transports.urllib3 import SectraClient

The transport itself lives in :mod:`sectra_transports._urllib3_transport` and imports no client.
"""

from __future__ import annotations

from ._dicomweb_sync import DicomWebClient
from ._remote_slide_sync import RemoteSlide
from ._sync import SectraClient
from ._urllib3_transport import Urllib3Transport

__all__ = ["DicomWebClient", "Urllib3Transport", "SectraClient", "RemoteSlide"]
