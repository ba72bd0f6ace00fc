"""What every ``sectra`` command shares: exit statuses, the usage error, the connection options
and the client they build, argparse value types."""

from __future__ import annotations

import argparse
import getpass
import os
import warnings
from typing import Any, TextIO

import msgspec

from sectra_core import schemas as s
from sectra_core.errors import ConfigurationError

__all__ = ["EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED", "DEFAULT_TIMEOUT", "UsageError", "Parser", "client_from", "connection_parser", "print_json", "positive_float", "positive_int", "port_number", "env_default", "sdk_version"]


#: Exit statuses (see the ``sectra_client.cli`` docstring).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


#: Default seconds for ``--timeout`` (each connect, and each wait for the server's next bytes).
DEFAULT_TIMEOUT = 60.0


class UsageError(ConfigurationError):
    """A mistake on the command line: exit status 2."""


def sdk_version() -> str:
    """The SDK's version: ``sectra_core.__version__``, the one place it is defined."""
    from sectra_core import __version__

    return __version__


def print_json(value: Any, out: TextIO) -> None:
    out.write(msgspec.json.format(s.encode(value), indent=2).decode() + "\n")


def client_from(args: argparse.Namespace) -> Any:
    from sectra_transports.urllib3 import SectraClient

    url = args.url or os.environ.get("SECTRA_URL")
    if not url:
        raise UsageError("no server: pass --url or set SECTRA_URL")
    options: dict[str, Any] = {
        "allow_http": args.allow_http, "api_version": args.api_version,
        # One limit for the user: each connect and each wait for the server's next bytes.
        "connect_timeout": min(args.timeout, 10.0), "read_timeout": args.timeout,
    }
    if args.proxy is not None:
        options["proxy"] = args.proxy
    if args.insecure:
        options["verify"] = False
    elif args.ca_bundle:
        options["verify"] = args.ca_bundle
    if args.username:
        if not args.application_id:
            raise UsageError("--username needs --application-id (the app the token is for)")
        password = os.environ.get("SECTRA_PASSWORD") or _ask_password(args.username)
        return SectraClient.from_credentials(url, args.username, password, args.application_id, **options)
    token = args.token or os.environ.get("SECTRA_TOKEN")
    if not token:
        raise UsageError("no token: set SECTRA_TOKEN, pass --token, or log in with --username")
    return SectraClient(url, token, **options)


def _ask_password(username: str) -> str:
    """The password from the terminal, hidden; a clear error where there is no terminal to ask on."""
    try:
        with warnings.catch_warnings():
            # getpass falls back to reading stdin *with echo* (and a warning) when it cannot
            # control a terminal: refuse instead of echoing a password into a log.
            warnings.simplefilter("error", getpass.GetPassWarning)
            return getpass.getpass(f"Password for {username}: ")
    except (EOFError, getpass.GetPassWarning):
        raise UsageError(f"no terminal to ask for {username}'s password on: set SECTRA_PASSWORD") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def microns_per_pixel(text: str) -> float:
    """A µm/px option (``--mpp``, ``--default-mpp``): a positive, finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of microns per pixel") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number of microns per pixel, e.g. 0.25")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 0 (any free one) to 65535")
    return value


def env_default(name: str) -> str | None:
    return os.environ.get(name) or None


class Parser(argparse.ArgumentParser):
    """argparse, with "sectra: error: ..." on one line and a hint to ``--help`` (exit 2)."""

    def error(self, message: str) -> Any:  # argparse's signature returns NoReturn
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def connection_parser() -> argparse.ArgumentParser:
    """The options of every command that calls a server (``--url``, ``--token``, ...), as a parent parser."""
    conn = Parser(add_help=False)
    conn.add_argument("--url", default=env_default("SECTRA_URL"), help="IA-API base URL (env SECTRA_URL)")
    conn.add_argument("--token", help="bearer token (prefer env SECTRA_TOKEN: options show in the process list)")
    conn.add_argument("--username", default=env_default("SECTRA_USERNAME"),
                      help="log in with POST /token; the password comes from env SECTRA_PASSWORD or a hidden "
                           "prompt (env SECTRA_USERNAME)")
    conn.add_argument("--application-id", "--app", dest="application_id", default=env_default("SECTRA_APPLICATION_ID"),
                      help="the application id: results are read for it, and a /token login is for it "
                           "(env SECTRA_APPLICATION_ID; --app is the same option)")
    conn.add_argument("--api-version", default=env_default("SECTRA_API_VERSION"),
                      help="pin an API-version adapter, e.g. 3.4 or 5.0 (default: ask the server's /info)")
    conn.add_argument("--timeout", type=positive_float, default=env_default("SECTRA_TIMEOUT") or DEFAULT_TIMEOUT,
                      metavar="SECONDS",
                      help="give up when connecting (at most 10 s) or waiting for the server's next bytes takes "
                           "longer (default %(default)s; env SECTRA_TIMEOUT)")
    conn.add_argument("--proxy", default=None, metavar="URL",
                      help="HTTP proxy for every request, e.g. http://proxy:3128; '' for none "
                           "(default: env HTTPS_PROXY/HTTP_PROXY, honouring NO_PROXY)")
    conn.add_argument("--allow-http", action="store_true",
                      help="plain http to a non-loopback host (default: upgraded to https)")
    conn.add_argument("--ca-bundle", default=env_default("SECTRA_CA_BUNDLE"),
                      help="CA bundle for the server's certificate (default: the system's; env SECTRA_CA_BUNDLE)")
    conn.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (testing only)")
    return conn
