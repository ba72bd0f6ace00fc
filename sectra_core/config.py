"""Configuration from ``SECTRA_*`` environment variables and an optional ``.env`` file (#17 item 8).

For apps and scripts::

    from sectra_core.config import Settings

    settings = Settings.from_env()          # reads ./.env first, if there is one
    client = SectraClient(settings.url, settings.token, **settings.client_options())

Variables (all optional): ``SECTRA_URL``, ``SECTRA_TOKEN``, ``SECTRA_USERNAME``,
``SECTRA_PASSWORD``, ``SECTRA_APPLICATION_ID``, ``SECTRA_API_VERSION``, ``SECTRA_CA_BUNDLE``,
``SECTRA_TIMEOUT`` (seconds), ``SECTRA_PROXY`` (else ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``),
``SECTRA_DEBUG`` (``1``: log the messages of handler errors, see :func:`debug_enabled`).

A ``.env`` file is read with python-dotenv's ``dotenv_values`` (extra ``app``), so it means what it
means to docker-compose and every other dotenv tool: ``A="x y" # note`` is ``x y``, ``export``
prefixes and ``${VAR}`` interpolation work. Values already in the environment win over the file.
A line dotenv cannot parse is a :class:`~sectra_core.errors.ConfigurationError` naming its number
(never its text: it may hold a secret).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, require
from .headers import digits

__all__ = ["Settings", "read_env_file", "load_env_file", "debug_enabled", "env_limit"]

_TRUE = {"1", "true", "yes", "on"}


def env_limit(name: str, default: int, unit: str = "bytes") -> int:
    """A positive limit from the environment variable ``name`` (ASCII digits), else ``default``
    when it is unset; anything else set there is a :class:`ConfigurationError` naming it."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = digits(raw)
    if not value:
        raise ConfigurationError(f"{name} must be a positive number of {unit}, not {raw[:40]!r}")
    return value


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``NAME=value`` pairs of a ``.env`` file, read by python-dotenv's ``dotenv_values``.

    Raises :class:`ConfigurationError` for a line dotenv cannot parse (dotenv itself would only log
    and skip it) and for a name without a value; :class:`~sectra_core.errors.MissingExtraError`
    without python-dotenv (``pip install 'sectra-sdk[app]'``).
    """
    dotenv = require("dotenv", "app", "reading a .env file")
    unparsed = _UnparsedLines()
    logger = logging.getLogger("dotenv.main")  # where dotenv reports the lines it skips
    logger.addHandler(unparsed)
    try:
        read = dotenv.dotenv_values(path)
    finally:
        logger.removeHandler(unparsed)
    if unparsed.lines:
        raise ConfigurationError(f"{path}, line {unparsed.lines[0]}: not NAME=value")
    values: dict[str, str] = {}
    for name, value in read.items():
        if value is None:
            raise ConfigurationError(f"{path}: {name} has no '=' and no value")
        values[name] = value
    return values


class _UnparsedLines(logging.Handler):
    """Collects the line numbers in dotenv's "could not parse statement starting at line N"."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "could not parse" in str(record.msg):
            self.lines.append(str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?")


def load_env_file(path: str | os.PathLike[str] = ".env", *, environ: MutableMapping[str, str] | None = None,
                  override: bool = False) -> bool:
    """Copy a ``.env`` file's values into ``environ`` (default ``os.environ``); those already set are
    kept unless ``override``. Returns False when there is no such file."""
    target = os.environ if environ is None else environ
    if not Path(path).is_file():
        return False
    for name, value in read_env_file(path).items():
        if override or name not in target:
            target[name] = value
    return True


def debug_enabled(explicit: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether handler errors are logged with their messages: ``explicit`` if given, else
    ``SECTRA_DEBUG``. Off by default, because a message may quote patient data."""
    if explicit is not None:
        return explicit
    return (environ if environ is not None else os.environ).get("SECTRA_DEBUG", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class Settings:
    """Connection settings gathered from ``SECTRA_*`` variables; secrets never appear in the repr."""

    url: str | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    application_id: str | None = None
    api_version: str | None = None
    ca_bundle: str | None = None
    timeout: float | None = None
    proxy: str | None = field(default=None, repr=False)  # may carry proxy credentials
    debug: bool = False

    @classmethod
    def from_env(cls, env_file: str | os.PathLike[str] | None = ".env",
                 environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``SECTRA_*`` from ``environ`` (default ``os.environ``), after ``env_file`` if it exists
        (``None``: no file). The process environment wins over the file."""
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update(read_env_file(env_file))
        values.update(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            return values.get(f"SECTRA_{name}") or None

        timeout = get("TIMEOUT")
        try:
            seconds = float(timeout) if timeout is not None else None
        except ValueError:
            raise ConfigurationError(f"SECTRA_TIMEOUT={timeout!r} is not a number of seconds") from None
        return cls(
            url=get("URL"), token=get("TOKEN"), username=get("USERNAME"), password=get("PASSWORD"),
            application_id=get("APPLICATION_ID"), api_version=get("API_VERSION"), ca_bundle=get("CA_BUNDLE"),
            timeout=seconds, proxy=get("PROXY"), debug=debug_enabled(None, values),
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``SectraClient``/``AsyncSectraClient`` (those that were set)."""
        options: dict[str, Any] = {}
        if self.api_version:
            options["api_version"] = self.api_version
        if self.ca_bundle:
            options["verify"] = self.ca_bundle
        if self.timeout is not None:
            options["read_timeout"] = self.timeout
            options["connect_timeout"] = min(self.timeout, 10.0)
        if self.proxy is not None:
            options["proxy"] = self.proxy
        return options
