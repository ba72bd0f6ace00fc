"""urllib3's connections and pools, as the blocking transport uses them (issue #18).

Two changes to how a response is read, neither to what is sent or accepted:

* the response head is parsed in one go where it is plain (:mod:`._response_head`), instead of
  line by line through :mod:`email.parser`;
* once connected (after the TLS handshake), the socket keeps its timeout in Python
  (:mod:`._polled_socket`): no poll before a send, no ioctl per timeout change.

:data:`POOL_CLASSES` goes in a ``PoolManager``'s (or ``ProxyManager``'s) ``pool_classes_by_scheme``.
"""

from __future__ import annotations

import urllib3
import urllib3.connection

from ._polled_socket import polled
from ._response_head import Response

__all__ = ["HTTPConnection", "HTTPSConnection", "HTTPConnectionPool", "HTTPSConnectionPool", "POOL_CLASSES"]


class HTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's plain connection, with the fast response head and a polled socket."""

    response_class = Response

    def connect(self) -> None:
        super().connect()
        self.sock = polled(self.sock)


class HTTPSConnection(urllib3.connection.HTTPSConnection):
    """urllib3's TLS connection (same verification), with the fast response head and, after the
    handshake, a polled socket."""

    response_class = Response

    def connect(self) -> None:
        super().connect()
        self.sock = polled(self.sock)


class HTTPConnectionPool(urllib3.HTTPConnectionPool):
    """A pool of :class:`HTTPConnection`."""

    ConnectionCls = HTTPConnection


class HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    """A pool of :class:`HTTPSConnection`."""

    ConnectionCls = HTTPSConnection


#: The pools by scheme, for ``PoolManager.pool_classes_by_scheme``.
POOL_CLASSES: dict[str, type[urllib3.HTTPConnectionPool]] = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
