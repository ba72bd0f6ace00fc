"""Base-URL rules: normalisation, loopback detection and the plain-http policy."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

__all__ = ["is_loopback", "normalize_base_url"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``*.localhost``, 127.0.0.0/8 and ``::1``."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(url: str, *, allow_http: bool = False) -> str:
    """The IA-API base URL in canonical form: scheme, host, path, no trailing slash.

    * No scheme: ``http`` for loopback hosts, ``https`` otherwise (``"localhost:8001"`` and
      ``"pacs/api"`` both work, unlike the community client).
    * ``http`` to a non-loopback host is upgraded to ``https`` unless ``allow_http`` is True:
      callback tokens must not cross a network in clear text.
    * Query strings, fragments and user-info are refused: they would leak into every request.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the IA-API base URL is empty")
    text = url.strip()
    if "://" not in text:
        host = urlsplit("//" + text).hostname or ""
        text = ("http://" if is_loopback(host) else "https://") + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise ConfigurationError(f"unsupported URL scheme {scheme!r}; use https (or http to loopback)")
    if not parts.hostname:
        raise ConfigurationError("the IA-API base URL has no host")
    try:
        parts.port
    except ValueError:
        raise ConfigurationError(
            f"the port in the IA-API base URL {parts.netloc!r} is not a number from 0 to 65535"
        ) from None
    if parts.username or parts.password:
        raise ConfigurationError("credentials in the URL are not allowed; pass a token instead")
    if parts.query or parts.fragment:
        raise ConfigurationError("the IA-API base URL must not have a query string or fragment")
    if scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        log.warning("upgrading plain http to https for %s (pass allow_http=True to opt out)", parts.hostname)
        scheme = "https"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
