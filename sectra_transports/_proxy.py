"""Which HTTP proxy a request goes through: an explicit ``proxy=``, or the environment (#17 item 3).

Hospital networks often reach the PACS only through a proxy, configured the usual way:
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (lower-case names win, as in curl and urllib) and
``NO_PROXY`` (comma-separated host names, domain suffixes, ``*``; matched by urllib's
``proxy_bypass_environment``). Rules, shared by both transports:

* ``proxy="http://host:port"``: every request goes through that proxy (environment ignored).
* ``proxy=""``: never a proxy (environment ignored).
* ``proxy=None`` (default): the environment decides; loopback hosts are never proxied from the
  environment (a proxy cannot reach this machine's loopback, and a local mock must keep working on
  a machine with ``HTTP_PROXY`` set), whatever ``NO_PROXY`` says.

https goes through the proxy with ``CONNECT`` (TLS end to end: the proxy sees only the host name);
plain http is sent to the proxy in absolute form. Only ``http://`` proxies are supported (the
connection to the proxy itself is not encrypted); ``user:password@`` in the proxy URL becomes a
``Proxy-Authorization: Basic`` header and is never logged or shown in a repr.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sectra_core.errors import ConfigurationError
from sectra_core.urls import is_loopback

__all__ = ["Proxy", "proxy_for"]

# urllib's NO_PROXY matcher (host names, ".domain" suffixes, "*", ports); public but not in typeshed.
_bypass: Callable[[str, dict[str, str]], bool] = getattr(urllib.request, "proxy_bypass_environment")


@dataclass(frozen=True)
class Proxy:
    """A proxy to send requests through: its address and, if any, the ``Proxy-Authorization`` value."""

    url: str  # scheme://host:port, without credentials
    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # never in a repr: it is a credential

    @classmethod
    def parse(cls, text: str) -> Proxy:
        """``http://[user:password@]host[:port]``; a missing scheme means ``http``."""
        raw = text.strip()
        parts = urlsplit(raw if "://" in raw else "http://" + raw)
        if parts.scheme != "http":
            raise ConfigurationError(
                f"proxy scheme {parts.scheme!r} is not supported: give an http:// proxy "
                "(https requests still travel through it encrypted, with CONNECT)"
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise ConfigurationError("the proxy URL's port is not a number from 0 to 65535") from None
        if not parts.hostname:
            raise ConfigurationError("the proxy URL has no host")
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        return cls(f"http://{netloc}:{port}", host, port, auth)


def proxy_for(url: str, proxy: str | None) -> Proxy | None:
    """The proxy for a request to ``url`` under the rules above, or None to connect directly."""
    if proxy is not None:
        return Proxy.parse(proxy) if proxy.strip() else None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen:
        return None
    netloc = f"{host}:{parts.port}" if parts.port else host
    if _bypass(netloc, proxies):  # NO_PROXY
        return None
    return Proxy.parse(chosen)
