"""Trusted callback origins: which ``callbackInfo.url`` an analysis app may call back.

Any POST to an app names a URL the app then calls with its client (spec §1.3, §5.3.1
``callbackInfo``). Unchecked, that makes every app an open proxy into the network it runs in
(server-side request forgery): the app would fetch from ``http://169.254.169.254/`` or a database
port on loopback for whoever asks. So the app toolkit calls back only origins its operator listed.

An origin is ``scheme://host:port`` after normalisation (RFC 6454): scheme and host lower-cased,
a trailing dot dropped, international names in IDNA (punycode) form, the default port made
explicit. A URL with user-info (``https://pacs.example.org@evil.example``), a backslash, a
percent-encoded or otherwise odd authority is never trusted: parsers disagree on such URLs, and
the disagreement is how allow-lists are bypassed. Nothing here does I/O (no DNS lookups: the
comparison is by name, which is what the client connects to).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError, UntrustedOriginError

__all__ = ["TRUSTED_CALLBACKS_ENV", "origin_of", "TrustedOrigins"]

#: The environment variable read when ``AnalysisApp(trusted_callbacks=...)`` is not given.
TRUSTED_CALLBACKS_ENV: Final = "SECTRA_TRUSTED_CALLBACKS"

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _ascii_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if not host:
        raise ValueError("no host")
    try:
        return str(ipaddress.ip_address(host))  # canonical form of IPv4 / IPv6 literals
    except ValueError:
        pass
    if not host.isascii():
        host = host.encode("idna").decode("ascii")  # raises UnicodeError (a ValueError) on junk
    if not re.fullmatch(r"[a-z0-9._-]+", host) or ".." in host:
        raise ValueError("not a host name")
    return host


def _split(url: str) -> tuple[str, str, int, str]:
    """``(scheme, ascii host, port, path)`` of ``url``; ValueError for anything odd."""
    if not isinstance(url, str) or not url or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("empty, or holds whitespace or control characters")
    if "\\" in url:
        raise ValueError("holds a backslash")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("the scheme is not http or https")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError("has user-info (user@host)")
    if netloc.startswith("["):  # an IPv6 literal (RFC 3986 §3.2.2)
        literal, _, rest = netloc[1:].partition("]")
        host = str(ipaddress.IPv6Address(literal))
        if rest and not rest.startswith(":"):
            raise ValueError("junk after the IPv6 address")
        port_text = rest[1:]
    else:
        if netloc.count(":") > 1:
            raise ValueError("an IPv6 address must be in brackets")
        name, _, port_text = netloc.partition(":")
        host = _ascii_host(name)
    if port_text and not re.fullmatch(r"[0-9]{1,5}", port_text):
        raise ValueError("the port is not a number")
    port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError("the port is out of range")
    return scheme, host, port, parts.path


def _format(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def origin_of(url: str) -> str:
    """The normalised origin ``scheme://host:port`` of ``url``; ConfigurationError if it has none."""
    try:
        scheme, host, port, _ = _split(url)
    except ValueError as exc:
        raise ConfigurationError(f"{url!r} is not a usable http(s) URL: {exc}") from None
    return _format(scheme, host, port)


class TrustedOrigins:
    """A set of origins an app may call back; ``check(url)`` before any request to ``url``.

    ``origins``: URLs or bare origins (``https://pacs.example.org``, ``http://127.0.0.1:8001``);
    a path in them is ignored, only scheme, host and port count. Loopback is trusted only when
    listed, like any other host.
    """

    def __init__(self, origins: Iterable[str] = ()) -> None:
        if isinstance(origins, str):
            origins = [origins]
        normalised: list[str] = []
        for entry in origins:
            text = entry.strip() if isinstance(entry, str) else entry
            if not text:
                continue
            if isinstance(text, str) and "://" not in text:
                raise ConfigurationError(
                    f"trusted callback {text!r} has no scheme; write it as https://{text}"
                )
            normalised.append(origin_of(text))
        self._origins = frozenset(normalised)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TrustedOrigins:
        """The origins listed, comma-separated, in ``SECTRA_TRUSTED_CALLBACKS``."""
        text = (os.environ if environ is None else environ).get(TRUSTED_CALLBACKS_ENV, "")
        return cls(part for part in text.split(","))

    def __bool__(self) -> bool:
        return bool(self._origins)

    def __repr__(self) -> str:
        return f"TrustedOrigins({sorted(self._origins)!r})"

    def __or__(self, other: TrustedOrigins) -> TrustedOrigins:
        joined = TrustedOrigins()
        joined._origins = self._origins | other._origins
        return joined

    @property
    def origins(self) -> frozenset[str]:
        """The normalised origins."""
        return self._origins

    def check(self, url: str) -> str:
        """``url`` rebuilt from its checked parts (ASCII host, no user-info), if its origin is
        trusted; else :class:`UntrustedOriginError`. The caller must use the returned URL, so the
        client connects exactly where the check looked."""
        try:
            scheme, host, port, path = _split(url)
        except ValueError as exc:
            raise UntrustedOriginError(f"the callback URL is not a plain http(s) URL ({exc})") from None
        origin = _format(scheme, host, port)
        if origin not in self._origins:
            # The trusted list stays out of the message: it may reach whoever sent the URL.
            raise UntrustedOriginError(
                f"the callback origin {origin} is not trusted; list it in AnalysisApp(trusted_callbacks=[...]) "
                f"or {TRUSTED_CALLBACKS_ENV} if this app should call it"
            )
        shown = f"[{host}]" if ":" in host else host
        netloc = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
        return urlunsplit((scheme, netloc, path, "", ""))
