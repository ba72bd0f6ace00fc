"""Serve an :class:`~sectra_core.app.declaration.AnalysisApp` over HTTP: a Quart blueprint or a whole app.

    from sectra_client.app import AnalysisApp, create_app
    asgi_app = create_app(app)                  # quart-trio; mode="asyncio" for plain Quart
    # hypercorn --worker-class trio mymodule:asgi_app   (or AppServer(asgi_app).run() in-process)

Routes, relative to where the blueprint is mounted (spec §3): ``GET /`` registration, ``GET
/info``, ``POST /`` invocations, ``POST /imagenotification``. Every answer carries the
``X-Sectra-*`` headers. Handlers get a context with a client for the invocation's callback URL
(``async def`` → trio client, needs trio mode; ``def`` → sync client, run in a worker thread).

Hardening (docs/reliability.md, "Security"): an invocation whose ``callbackInfo.url`` is not a
trusted origin is answered 403 before any request; a failed call back is answered with one fixed
502 text; bodies past ``max_invocation_bytes`` get 413 unbuffered, bodies slower than
``body_timeout`` 408; repeated copies of one invocation share the first copy's answer.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import trio
from quart import Blueprint, Quart, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from sectra_core import schemas as s
from sectra_core.app import messages as w
from sectra_core.app.messages import released
from sectra_core.app.declaration import ACTIONS, AnalysisApp
from sectra_core.app.jobs import StoredJobRunner
from sectra_core.config import debug_enabled
from sectra_core.errors import ConfigurationError, UntrustedOriginError, ValidationError
from sectra_core.app.origins import TRUSTED_CALLBACKS_ENV, TrustedOrigins
from sectra_core.plugins import default_plugins
from sectra_core.app.messages import parse_image_notification, parse_invocation

from .contexts import AsyncInvocationContext, InvocationContext, SlideLocks
from .asgi import BODY_TIMEOUT, KEEP_ALIVE_TIMEOUT, READ_TIMEOUT, AsgiServer
from .runners import TrioJobRunner

__all__ = ["create_blueprint", "create_app", "AppServer", "released"]

log = logging.getLogger("sectra_transports.app.server")

Answer = tuple[int, bytes]


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


class _FromThread:
    """A job runner used from a worker thread while the runner lives in the trio thread."""

    def __init__(self, runner: Any, token: trio.lowlevel.TrioToken) -> None:
        self._runner, self._token = runner, token

    def submit(self, spec: Any, work: Any) -> None:
        trio.from_thread.run_sync(self._runner.submit, spec, work, trio_token=self._token)

    def cancel(self, cancellation_token: str) -> bool:
        return bool(trio.from_thread.run_sync(self._runner.cancel, cancellation_token, trio_token=self._token))


@dataclass
class _Entry:
    done: trio.Event | asyncio.Event
    answer: Answer | None = None
    expires: float = float("inf")


class _Once:
    """Runs each invocation once per ``window`` seconds: concurrent copies wait for the first
    copy's answer, later copies get it from memory (issue #12: 100 copies of one ``create`` stored
    100 results). Failed answers are shared with the copies waiting but not kept, so a retry
    runs again. At most ``max_entries`` answers and ``max_bytes`` of them are kept, oldest out first.
    """

    def __init__(self, window: float, *, max_entries: int = 1024, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.window = window
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        if entry.answer is not None and entry.expires != float("inf"):
            self._bytes -= len(entry.answer[1])

    def _trim(self, now: float) -> None:
        for key, entry in list(self._entries.items()):
            over = len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            if entry.answer is not None and (entry.expires <= now or over):
                self._drop(key)

    async def run(self, key: str, compute: Callable[[], Awaitable[Answer]]) -> Answer:
        if self.window <= 0:
            return await compute()
        while True:
            self._trim(time.monotonic())
            entry = self._entries.get(key)
            if entry is None:
                break
            if entry.answer is None:
                await entry.done.wait()
                if entry.answer is None:
                    continue  # the first copy was cancelled (its client left): run it ourselves
            return entry.answer
        entry = self._entries[key] = _Entry(trio.Event() if _in_trio() else asyncio.Event())
        try:
            answer = await compute()
        except BaseException:
            self._entries.pop(key, None)
            entry.done.set()
            raise
        entry.answer = answer
        entry.done.set()
        if answer[0] == 200:
            entry.expires = time.monotonic() + self.window
            self._bytes += len(answer[1])
        else:
            self._entries.pop(key, None)
        return answer


class _Dispatcher:
    """Turns one decoded message into the answer Sectra expects, calling the user's handler."""

    def __init__(self, app: AnalysisApp, job_runner: Any, trusted: TrustedOrigins) -> None:
        self.app = app
        self._runner = job_runner if job_runner is not None else app.job_runner
        self.trusted = trusted
        self._once = _Once(app.dedup_window)
        self._locks = SlideLocks()

    async def respond(self, action: str, message: Any) -> Answer:
        """The status and body for ``message``; never raises for a failure of the handler or of
        a call back to Sectra (they become Sectra's ``{"error": ...}`` shape)."""
        try:
            # Before anything else, and before any request: the URL came from whoever sent the POST.
            url = self.trusted.check(message.callback_info.url)
        except UntrustedOriginError as exc:
            log.warning("refused a %s invocation for %s: %s", action, self.app.application_id, exc)
            return w.error_answer(exc)
        key = w.invocation_key(message)
        # From here on (handler, client, background jobs) only the checked form of the URL is used.
        message = msgspec.structs.replace(message, callback_info=msgspec.structs.replace(message.callback_info, url=url))
        return await self._once.run(key, lambda: self._answer_safely(action, message, url))

    async def _answer_safely(self, action: str, message: Any, url: str) -> Answer:
        try:
            return 200, await self.answer(action, message, url)
        except Exception as exc:  # every failure becomes Sectra's {"error": ...} shape
            status, answer = w.error_answer(exc)
            if status >= 500:
                reveal = bool(current_app.config.get("SECTRA_DEBUG"))  # see create_app(debug=)
                log.error("the app failed to answer a %s invocation: %s", action, w.failure_summary(exc, reveal=reveal))
            return status, answer

    def open_queue(self) -> None:
        """The app's job queue (issue #16): open it and log (and record, for workers to compare)
        its absolute location. Blocking: the server calls it on a thread as it starts."""
        if self._runner is None and self.app.queue:
            from .queue import runner_for

            runner = runner_for(self.app)  # jobs go to `sectra worker` processes
            runner.announce()
            self._runner = runner

    def runner(self) -> Any:
        if self._runner is None and self.app.queue:
            self.open_queue()  # normally done as the server starts (before_app_serving)
        if self._runner is None:
            mode = "trio" if _in_trio() else "asyncio"
            self._runner = (self.app.plugins or default_plugins()).make_job_runner(mode)
        if isinstance(self._runner, TrioJobRunner) and _in_trio():
            nursery = getattr(current_app, "nursery", None)
            if nursery is not None:
                self._runner.attach(nursery)
        return self._runner

    def _client_args(self, message: Any, url: str) -> dict[str, Any]:
        # ``url`` is the checked callback URL, rebuilt from its checked parts: the client connects
        # exactly where the trust check looked, whatever another URL parser makes of the original.
        return {"url": url, "token": message.callback_info.token, "app_version": self.app.app_version, **self.app.client_options}

    async def answer(self, action: str, message: Any, url: str) -> bytes:
        """The 200 body for ``message``, whose callback ``url`` has been checked; raises on failure."""
        handler = self.app.handler(action)
        runner = self.runner()
        token = getattr(message, "cancellation_token", None)
        stored = isinstance(runner, StoredJobRunner)  # a queue: its calls wait on its store, off the loop
        if action == "cancel" and token and runner is not None:
            if stored:
                await current_app.ensure_async(runner.cancel)(token)
            else:
                runner.cancel(token)
        if handler is None:
            return self._default(action, message)
        if inspect.iscoroutinefunction(handler):
            if not _in_trio():
                raise ConfigurationError("async handlers use the trio client: serve the app with mode='trio'")
            from ..trio import AsyncSectraClient

            async with AsyncSectraClient(**self._client_args(message, url)) as client:
                ctx = AsyncInvocationContext(self.app, message, client, runner, self._locks)
                value = await handler(ctx)
                if action in ("create", "modify"):
                    value = await ctx.store(value) if value is not None else self._nothing(action, message)
        else:
            trio_token = trio.lowlevel.current_trio_token() if _in_trio() else None
            if trio_token is not None and runner is not None and not stored:
                runner = _FromThread(runner, trio_token)
            value = await current_app.ensure_async(self._sync)(handler, action, message, url, runner, trio_token)
        # delete/cancel/notification handlers return None ({} and [] are implied); anything else
        # is refused by encode_answer, as it would mean the handler expects an effect it has not.
        return w.encode_answer(action, value)

    def _sync(self, handler: Any, action: str, message: Any, url: str, runner: Any, trio_token: Any) -> Any:
        from ..urllib3 import SectraClient

        with SectraClient(**self._client_args(message, url)) as client:
            ctx = InvocationContext(self.app, message, client, runner, self._locks, trio_token)
            value = handler(ctx)
            if action in ("create", "modify"):
                value = ctx.store(value) if value is not None else self._nothing(action, message)
            return value

    @staticmethod
    def _nothing(action: str, message: Any) -> s.ResultResponse:
        if action == "modify":
            return released(message.input)
        raise ValidationError("the create handler returned nothing; Sectra needs the stored result")

    def _default(self, action: str, message: Any) -> bytes:
        if action == "create":
            raise ConfigurationError(f"the app {self.app.application_id!r} has no create handler")
        if action == "modify":
            return w.encode_answer(action, released(message.input))
        return w.encode_answer(action, None)


def _trusted(app: AnalysisApp, extra: Iterable[str] | None) -> TrustedOrigins:
    trusted = app.trusted_callbacks | TrustedOrigins(extra or ())
    if trusted:
        log.info("app %s calls back only %s", app.application_id, ", ".join(sorted(trusted.origins)))
    else:
        log.warning(
            "app %s trusts no callback origin, so it refuses every invocation (403): list the Sectra "
            "server it serves in AnalysisApp(trusted_callbacks=['https://pacs.example.org']) or %s",
            app.application_id, TRUSTED_CALLBACKS_ENV,
        )
    return trusted


def create_blueprint(
    app: AnalysisApp, *, name: str = "sectra_app", url_prefix: str = "", job_runner: Any = None,
    trusted_callbacks: Iterable[str] | None = None,
) -> Blueprint:
    """A Quart blueprint serving ``app``; mount it in your own Quart or quart-trio app.

    ``trusted_callbacks``: origins trusted by this server on top of ``app.trusted_callbacks`` (the
    test fixtures add the mock's). In your own app, also set ``MAX_CONTENT_LENGTH`` to
    ``app.max_invocation_bytes`` or less (Quart's default of 16 MB is what it buffers before the
    blueprint can refuse a body) and ``BODY_TIMEOUT``, as :func:`create_app` does.
    """
    bp = Blueprint(name, __name__, url_prefix=url_prefix or None)
    dispatcher = _Dispatcher(app, job_runner, _trusted(app, trusted_callbacks))

    @bp.before_app_serving
    async def open_queue() -> None:
        await current_app.ensure_async(dispatcher.open_queue)()  # the queue's store may block
    roots = ["", "/"] if url_prefix else ["/"]

    def reply(body: bytes, status: int = 200, *, close: bool = False) -> Response:
        headers = {**app.response_headers(), "Content-Type": "application/json"}
        if close:
            # The unread rest of the body would otherwise keep the connection busy.
            headers["Connection"] = "close"
        return Response(body, status=status, headers=headers)

    async def registration() -> Response:
        url = request.base_url.rstrip("/") if url_prefix else request.base_url
        return reply(w.registration_answer(app.registration, url))

    async def info() -> Response:
        return reply(w.info_answer(app.api_version, app.app_version))

    def too_large(length: int | None) -> Response:
        log.warning("refused an invocation body past the %d-byte limit (max_invocation_bytes)", app.max_invocation_bytes)
        status, answer = w.too_large_answer(app.max_invocation_bytes, length)
        return reply(answer, status, close=True)

    async def handle(action_of: Any, parse: Any) -> Response:
        limit = app.max_invocation_bytes
        length = request.content_length
        if length is not None and length > limit:
            return too_large(length)  # before reading a byte of it
        try:
            # Quart stops buffering past MAX_CONTENT_LENGTH (create_app sets it to the limit) and
            # gives up after BODY_TIMEOUT, so a trickled body cannot hold the request forever.
            body = await request.get_data(as_text=False)
        except RequestEntityTooLarge:
            return too_large(None)
        except RequestTimeout:
            log.warning("an invocation body did not arrive within %s s (BODY_TIMEOUT)", current_app.config["BODY_TIMEOUT"])
            return reply(s.encode({"error": "the invocation body arrived too slowly"}), 408, close=True)
        if len(body) > limit:  # a user's own app with a larger MAX_CONTENT_LENGTH
            return too_large(None)
        try:
            message = parse(dict(request.headers), body)
            action = action_of(message)
        except Exception as exc:
            status, answer = w.error_answer(exc, parsing=True)
            return reply(answer, status)
        status, answer = await dispatcher.respond(action, message)
        return reply(answer, status)

    async def invocation() -> Response:
        return await handle(lambda m: m.action, parse_invocation)

    async def notification() -> Response:
        return await handle(lambda m: "notification", parse_image_notification)

    for root in roots:
        bp.add_url_rule(root, f"registration{root.replace('/', '_')}", registration, methods=["GET"], strict_slashes=False)
        bp.add_url_rule(root, f"invocation{root.replace('/', '_')}", invocation, methods=["POST"], strict_slashes=False)
    bp.add_url_rule("/info", "info", info, methods=["GET"])
    bp.add_url_rule(w.NOTIFICATION_PATH, "notification", notification, methods=["POST"])
    return bp


def create_app(
    app: AnalysisApp, *, mode: str = "trio", url_prefix: str = "", job_runner: Any = None,
    trusted_callbacks: Iterable[str] | None = None, body_timeout: float = BODY_TIMEOUT,
    debug: bool | None = None,
) -> Quart:
    """A whole ASGI app serving ``app``: quart-trio (``mode="trio"``) or Quart on asyncio.

    ``trusted_callbacks``: see :func:`create_blueprint`. ``body_timeout``: seconds an invocation
    body may take to arrive (Quart's ``BODY_TIMEOUT``); slower ones get 408. ``GET /healthz``
    answers 200 ``ok`` (for container and load-balancer checks). ``debug``: log handler errors
    with their messages (default: ``SECTRA_DEBUG``; off, since they may quote PHI).
    """
    if mode == "trio":
        from quart_trio import QuartTrio

        asgi: Quart = QuartTrio(app.application_id)
    elif mode == "asyncio":
        asyncs = [a for a in ACTIONS if app.is_async(a)]
        if asyncs:
            raise ConfigurationError(f"async handlers ({', '.join(asyncs)}) need mode='trio' (the SDK's async client runs on trio)")
        asgi = Quart(app.application_id)
    else:
        raise ConfigurationError(f"mode must be 'trio' or 'asyncio', got {mode!r}")
    # Quart buffers a body up to MAX_CONTENT_LENGTH before any route runs: cap it at the app's limit.
    asgi.config["MAX_CONTENT_LENGTH"] = app.max_invocation_bytes
    asgi.config["BODY_TIMEOUT"] = body_timeout
    asgi.config["SECTRA_DEBUG"] = debug_enabled(debug)
    asgi.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    asgi.register_blueprint(create_blueprint(app, url_prefix=url_prefix, job_runner=job_runner, trusted_callbacks=trusted_callbacks))
    return asgi


async def _healthz() -> Response:
    return Response(b"ok\n", 200, content_type="text/plain")


class AppServer(AsgiServer):
    """Serve an analysis app on hypercorn's trio worker, in a trio nursery or a background thread.

    ``AppServer(create_app(app)).run()`` / ``await nursery.start(server.serve)``; ``url`` is the
    base URL (add the blueprint's ``url_prefix`` to get the registered URL). ``body_timeout``,
    ``read_timeout``, ``keep_alive_timeout``: see :mod:`sectra_transports.app.asgi`.
    """

    def __init__(
        self, asgi_app: Any, *, graceful_timeout: float = 5.0, body_timeout: float | None = BODY_TIMEOUT,
        read_timeout: float | None = READ_TIMEOUT, keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
    ) -> None:
        super().__init__(
            asgi_app, graceful_timeout=graceful_timeout, log=log, name="app", body_timeout=body_timeout,
            read_timeout=read_timeout, keep_alive_timeout=keep_alive_timeout,
        )
