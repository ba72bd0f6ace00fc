"""``sectra app serve MODULE:APP``: an :class:`~sectra_core.app.declaration.AnalysisApp` on hypercorn (trio).

Settings, each from a flag, else a ``SECTRA_*`` variable, else a ``.env`` file (``--env-file``,
default ``./.env``), else its default: ``--bind`` (``SECTRA_BIND``, comma-separated), ``--workers``
(``SECTRA_WORKERS``), ``--certfile``/``--keyfile`` (``SECTRA_TLS_CERT``/``SECTRA_TLS_KEY``),
``--proxy-hops``/``--proxy-mode`` (``SECTRA_PROXY_HOPS``/``SECTRA_PROXY_MODE``), ``--max-body-bytes``
(``SECTRA_MAX_INVOCATION_BYTES``), ``--url-prefix`` (``SECTRA_URL_PREFIX``), ``--body-timeout`` (``SECTRA_BODY_TIMEOUT``),
``--graceful-timeout`` (``SECTRA_GRACEFUL_TIMEOUT``), ``--log-format`` (``SECTRA_LOG_FORMAT``).
The ``.env`` file's other values (``SECTRA_TRUSTED_CALLBACKS``, ``SECTRA_QUEUE``, ...) are put in
the environment before the app's module is imported, so the app sees them too.

One process (the default) serves on trio in this process: SIGTERM or Ctrl-C stops accepting,
lets requests in flight finish (up to the graceful timeout) and exits 0; a second signal stops at
once (exit 1). ``--workers N`` (N > 1)
hands the sockets to hypercorn's own process manager (``hypercorn.run.run``), which spawns N trio
worker processes, each importing the app through :mod:`._serve_worker`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from ._common import EXIT_FAILURE, EXIT_OK, UsageError

__all__ = ["add_command", "cmd_app_serve", "ServeSettings", "resolve_settings", "JsonFormatter", "AccessLog", "build_asgi"]

#: Where the process manager hands the resolved settings to its spawned workers (JSON).
SETTINGS_ENV: Final = "SECTRA_SERVE_SETTINGS"
DEFAULT_BIND: Final = "127.0.0.1:8000"

log = logging.getLogger("sectra_client.serve")
access_log = logging.getLogger("sectra_client.serve.access")


@dataclass(frozen=True)
class ServeSettings:
    """What ``sectra app serve`` runs with, once flags, environment and ``.env`` are merged."""

    app_ref: str
    binds: list[str] = field(default_factory=lambda: [DEFAULT_BIND])
    workers: int = 1
    certfile: str | None = None
    keyfile: str | None = None
    proxy_hops: int = 0
    proxy_mode: str = "legacy"
    max_body_bytes: int | None = None
    body_timeout: float = 30.0
    graceful_timeout: float = 30.0
    log_format: str = "text"
    access_log: bool = True
    url_prefix: str = ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` (and ``error`` for an
    exception's type). Tracebacks are left out: their text may quote a token or patient data."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class AccessLog:
    """ASGI wrapper: one log line per request with method, path (never the query string, which
    may carry identifiers), status and duration; headers (tokens) are never logged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            client = (scope.get("client") or ("-",))[0]
            fields = {"method": scope["method"], "path": scope["path"], "status": status[0], "duration_ms": ms, "client": client}
            access_log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status[0], ms, extra={"fields": fields})


def configure_logging(log_format: str, stream: TextIO | None = None) -> None:
    """Log INFO and up to stderr, as text or one JSON object per line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _int(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise UsageError(f"{name}={text!r}: at least {minimum}")
    return value


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"{name}={text!r}: a positive number of seconds")
    return value


def _bind(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"bind {text!r}: write HOST:PORT, e.g. 127.0.0.1:8000 or [::]:8000 (port 0: any free one)")
    return text.strip()


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> ServeSettings:
    """Merge the flags in ``args`` over ``environ`` (the process environment over the ``.env``
    file's values): a flag left out (None) falls back to its ``SECTRA_*`` variable, then its default."""

    def pick(flag: Any, name: str) -> Any:
        if flag is not None:
            return flag
        value = environ.get(name, "").strip()
        return value or None

    binds_flag = args.bind or None
    binds_env = pick(None, "SECTRA_BIND")
    binds = binds_flag or ([b for b in binds_env.replace(" ", ",").split(",") if b] if binds_env else [DEFAULT_BIND])
    workers = pick(args.workers, "SECTRA_WORKERS")
    hops = pick(args.proxy_hops, "SECTRA_PROXY_HOPS")
    mode = pick(args.proxy_mode, "SECTRA_PROXY_MODE") or "legacy"
    if mode not in ("legacy", "modern"):
        raise UsageError(f"proxy mode {mode!r}: 'legacy' (X-Forwarded-*) or 'modern' (Forwarded)")
    body = pick(args.max_body_bytes, "SECTRA_MAX_INVOCATION_BYTES")
    log_format = pick(args.log_format, "SECTRA_LOG_FORMAT") or "text"
    if log_format not in ("text", "json"):
        raise UsageError(f"log format {log_format!r}: 'text' or 'json'")
    certfile, keyfile = pick(args.certfile, "SECTRA_TLS_CERT"), pick(args.keyfile, "SECTRA_TLS_KEY")
    if bool(certfile) != bool(keyfile):
        raise UsageError("TLS needs both --certfile and --keyfile (SECTRA_TLS_CERT, SECTRA_TLS_KEY)")
    for path in (certfile, keyfile):
        if path and not os.path.isfile(path):
            raise UsageError(f"TLS file {path!r} does not exist")
    prefix = (pick(args.url_prefix, "SECTRA_URL_PREFIX") or "").rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise UsageError(f"URL prefix {prefix!r}: a path starting with /, e.g. /cell-count")
    body_timeout = pick(args.body_timeout, "SECTRA_BODY_TIMEOUT")
    graceful = pick(args.graceful_timeout, "SECTRA_GRACEFUL_TIMEOUT")
    return ServeSettings(
        app_ref=args.app_ref, binds=[_bind(b) for b in binds],
        workers=_int("workers", str(workers), 1) if workers is not None else 1,
        certfile=certfile, keyfile=keyfile,
        proxy_hops=_int("proxy hops", str(hops), 0) if hops is not None else 0, proxy_mode=mode,
        max_body_bytes=_int("max body bytes", str(body), 1) if body is not None else None,
        body_timeout=_seconds("body timeout", str(body_timeout)) if body_timeout is not None else 30.0,
        graceful_timeout=_seconds("graceful timeout", str(graceful)) if graceful is not None else 30.0,
        log_format=log_format, access_log=not args.no_access_log, url_prefix=prefix,
    )


def load_target(settings: ServeSettings) -> Any:
    """The AnalysisApp named by ``settings.app_ref``, with the body limit applied."""
    from sectra_transports.app.queue import load_app

    app = load_app(settings.app_ref)
    if settings.max_body_bytes is not None:
        app.max_invocation_bytes = settings.max_body_bytes  # the flag wins over the app's own value
    return app


def build_asgi(app: Any, settings: ServeSettings) -> Any:
    """The ASGI callable served: the app's quart-trio app, wrapped as :class:`AsgiServer` wraps it
    (slow bodies get 408, final sends shielded), then the access log and the proxy fix."""
    from hypercorn.middleware import ProxyFixMiddleware

    from sectra_transports.app.asgi import BodyDeadline, ShieldFinalSend
    from sectra_transports.app.server import create_app

    asgi: Any = ShieldFinalSend(BodyDeadline(create_app(app, mode="trio", url_prefix=settings.url_prefix, body_timeout=settings.body_timeout), settings.body_timeout))
    if settings.access_log:
        asgi = AccessLog(asgi)
    if settings.proxy_hops:  # outermost: the access log and the app see the client the proxies vouch for
        asgi = ProxyFixMiddleware(asgi, mode=settings.proxy_mode, trusted_hops=settings.proxy_hops)  # type: ignore[arg-type]
    return asgi


def hypercorn_config(settings: ServeSettings) -> Any:
    """hypercorn's Config for ``settings`` (trio worker class; hypercorn's own access log off)."""
    from hypercorn.config import Config

    from sectra_transports.app.asgi import KEEP_ALIVE_TIMEOUT, READ_TIMEOUT

    config = Config()
    config.bind = list(settings.binds)
    config.worker_class = "trio"
    config.workers = settings.workers
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = settings.graceful_timeout
    config.read_timeout = READ_TIMEOUT  # type: ignore[assignment]  # hypercorn types it int | None; it takes seconds
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    if settings.certfile:
        config.certfile, config.keyfile = settings.certfile, settings.keyfile
    return config


def _queue_hint(app: Any, settings: ServeSettings, out: TextIO) -> None:
    if not app.queue:
        return
    # The queue's URL may hold a Redis password: it is never printed, only where it comes from.
    out.write(
        f"this app queues its analyses: start workers with the same SECTRA_QUEUE (or --queue-url):\n"
        f"    sectra worker {settings.app_ref} --workers 2\n"
    )


async def _serve_one(asgi: Any, config: Any, settings: ServeSettings, out: TextIO) -> bool:
    """Serve until a signal; True when the stop was graceful, False when a second signal cut
    the requests in flight short."""
    import trio
    from hypercorn.trio import serve

    stop = trio.Event()
    graceful = True
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal graceful
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        log.info("%s: finishing the requests in flight (up to %s s), then exiting", name, settings.graceful_timeout)
                        stop.set()
                    else:  # a second signal: the operator does not want to wait
                        log.warning("second %s: stopping now, without waiting for the requests in flight", name)
                        graceful = False
                        nursery.cancel_scope.cancel()
                        return

            async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
                await serve(asgi, config, shutdown_trigger=stop.wait, task_status=task_status)
                nursery.cancel_scope.cancel()  # hypercorn is done (requests in flight too): stop watching

            nursery.start_soon(watch)
            binds = await nursery.start(run_server)
            for bind in binds:
                out.write(f"serving on {bind}\n")
            out.flush()
            log.info("serving on %s", ", ".join(binds))
    log.info("stopped" if graceful else "stopped, requests in flight cut short")
    return graceful


def cmd_app_serve(args: argparse.Namespace, out: TextIO) -> int:
    """``sectra app serve``: serve the app until SIGTERM or Ctrl-C (graceful; exit 0)."""
    from sectra_core.config import load_env_file, read_env_file

    env_file = args.env_file if args.env_file is not None else ".env"
    file_values = read_env_file(env_file) if os.path.isfile(env_file) else {}
    if args.env_file is not None and not os.path.isfile(env_file):
        raise UsageError(f"--env-file {env_file!r} does not exist")
    settings = resolve_settings(args, {**file_values, **os.environ})
    configure_logging(settings.log_format)
    load_env_file(env_file)  # what the app reads at import (trusted callbacks, queue, ...); env wins
    app = load_target(settings)
    config = hypercorn_config(settings)
    out.write(f"app {app.application_id} ({settings.app_ref}), {settings.workers} worker process(es)"
              f"{', TLS' if settings.certfile else ''}\n")
    _queue_hint(app, settings, out)
    out.flush()
    if settings.workers == 1:
        import trio

        graceful = trio.run(_serve_one, build_asgi(app, settings), config, settings, out)
        return EXIT_OK if graceful else EXIT_FAILURE
    # N processes: hypercorn's manager binds the sockets, spawns N trio workers that import the app
    # again (through _serve_worker, reading the settings from the environment) and on SIGTERM sets
    # their shutdown event, so each finishes its requests in flight.
    from hypercorn.run import run

    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    config.application_path = "sectra_client.cli._serve_worker:asgi"
    for bind in settings.binds:
        out.write(f"serving on {'https' if settings.certfile else 'http'}://{bind}\n")
    out.flush()
    return EXIT_OK if run(config) == 0 else EXIT_FAILURE


def add_command(asub: Any) -> None:
    """Add ``app serve`` to the ``sectra app`` subparsers ``asub``."""
    p = asub.add_parser(
        "serve", help="serve an analysis app on hypercorn (trio) for production",
        description="Serve MODULE:APP (an AnalysisApp) on hypercorn with trio. Each setting: the flag, "
                    "else its SECTRA_* variable, else the .env file, else the default. GET /healthz answers "
                    "200 once the app is ready. SIGTERM finishes the requests in flight, then exits 0.",
    )
    p.add_argument("app_ref", metavar="MODULE:APP", help="the AnalysisApp as module:attribute, e.g. myapp:app")
    p.add_argument("--bind", "-b", action="append", metavar="HOST:PORT",
                   help=f"where to listen; repeat for several (env SECTRA_BIND, comma-separated; default {DEFAULT_BIND})")
    p.add_argument("--workers", "-w", default=None, metavar="N",
                   help="worker processes, each with its own trio loop (env SECTRA_WORKERS; default 1)")
    p.add_argument("--certfile", default=None, help="TLS certificate chain, PEM (env SECTRA_TLS_CERT)")
    p.add_argument("--keyfile", default=None, help="TLS private key, PEM (env SECTRA_TLS_KEY)")
    p.add_argument("--proxy-hops", default=None, metavar="N",
                   help="trust the client address and scheme from N reverse proxies' headers (env SECTRA_PROXY_HOPS; default 0: none)")
    p.add_argument("--proxy-mode", default=None, choices=["legacy", "modern"],
                   help="legacy: X-Forwarded-For/-Proto/-Host; modern: Forwarded (env SECTRA_PROXY_MODE; default legacy)")
    p.add_argument("--max-body-bytes", default=None, metavar="BYTES",
                   help="largest invocation body; larger ones get 413 (env SECTRA_MAX_INVOCATION_BYTES; default the app's, 1 MiB)")
    p.add_argument("--body-timeout", default=None, metavar="SECONDS",
                   help="seconds a request body may take to arrive; slower ones get 408 (env SECTRA_BODY_TIMEOUT; default 30)")
    p.add_argument("--graceful-timeout", default=None, metavar="SECONDS",
                   help="on SIGTERM, how long requests in flight may take to finish (env SECTRA_GRACEFUL_TIMEOUT; default 30)")
    p.add_argument("--log-format", default=None, choices=["text", "json"],
                   help="json: one JSON object per line on stderr (env SECTRA_LOG_FORMAT; default text)")
    p.add_argument("--url-prefix", default=None, metavar="PATH",
                   help="serve the app under PATH, e.g. /cell-count (its registered URL ends in it; env SECTRA_URL_PREFIX; "
                        "default: at the root). /healthz stays at the root")
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    p.add_argument("--env-file", default=None, metavar="PATH", help="the .env file read (default ./.env if it exists)")
    p.set_defaults(func=cmd_app_serve)
