"""Trusted callback origins: normalisation, and the tricks used to slip past allow-lists."""

from __future__ import annotations

import pytest

from sectra_core.errors import ConfigurationError, UntrustedOriginError
from sectra_core.app.origins import TrustedOrigins, origin_of

TRUSTED = TrustedOrigins(["https://pacs.example.org", "http://127.0.0.1:8001/ignored", "https://bücher.example."])


@pytest.mark.parametrize(("url", "checked"), [
    ("https://pacs.example.org/SectraPathologyServer/external/imageanalysis/v1",
     "https://pacs.example.org/SectraPathologyServer/external/imageanalysis/v1"),
    ("HTTPS://PACS.Example.ORG./v1", "https://pacs.example.org/v1"),  # case, trailing dot
    ("https://pacs.example.org:443/v1", "https://pacs.example.org/v1"),  # the default port
    ("https://pacs.example.org:0443", "https://pacs.example.org"),
    ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
    ("https://BÜCHER.example/x", "https://xn--bcher-kva.example/x"),  # IDNA: the client connects to the ASCII name
    ("https://xn--bcher-kva.example/x", "https://xn--bcher-kva.example/x"),
])
def test_trusted_forms(url: str, checked: str) -> None:
    assert TRUSTED.check(url) == checked


@pytest.mark.parametrize("url", [
    "https://pacs.example.org@evil.example/",  # user-info: the host is evil.example
    "https://pacs.example.org:443@evil.example/",
    "https://pacs.example.org\\@evil.example/",  # parsers disagree on backslashes
    "https://pacs.example.org.evil.example/",
    "https://evil.example/pacs.example.org",
    "https://pacs.example.org%2eevil.example/",
    "http://pacs.example.org/",  # another scheme is another origin
    "https://pacs.example.org:8443/",
    "http://127.0.0.1:8002/", "http://localhost:8001/", "http://127.1:8001/", "http://[::1]:8001/",
    "http://0x7f.0.0.1:8001/",
    "https://pacs.example.org /", "https://pacs.example.org\t/", "ftp://pacs.example.org/", "//pacs.example.org/",
    "https://pacs.example.org:99999/", "", "https://[::1/",
])
def test_untrusted_forms(url: str) -> None:
    with pytest.raises(UntrustedOriginError):
        TRUSTED.check(url)


def test_configuration() -> None:
    assert origin_of("https://PACS.example.org:443/a/b") == "https://pacs.example.org:443"
    assert origin_of("http://[::1]:80") == "http://[::1]:80"
    with pytest.raises(ConfigurationError, match="no scheme"):
        TrustedOrigins(["pacs.example.org"])
    with pytest.raises(ConfigurationError, match="user-info"):
        TrustedOrigins(["https://user@pacs.example.org"])
    assert not TrustedOrigins() and not TrustedOrigins.from_env({"SECTRA_TRUSTED_CALLBACKS": " , "})
    env = TrustedOrigins.from_env({"SECTRA_TRUSTED_CALLBACKS": "https://a.example, http://127.0.0.1:9"})
    assert env.origins == {"https://a.example:443", "http://127.0.0.1:9"}
    assert (env | TRUSTED).origins >= env.origins | TRUSTED.origins
    with pytest.raises(UntrustedOriginError, match="not trusted") as caught:
        env.check("https://b.example/")
    assert "a.example" not in str(caught.value)  # the list never reaches whoever sent the URL
