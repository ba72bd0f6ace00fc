"""Serve an :class:`~sectra_core.analysis_app.AnalysisApp` over HTTP: a Quart blueprint or a whole app.

    from sectra_client.app import AnalysisApp, create_app
    asgi_app = create_app(app)                  # quart-trio; mode="asyncio" for plain Quart
    # hypercorn --worker-class trio mymodule:asgi_app   (or AppServer(asgi_app).run() in-process)

Routes, relative to where the blueprint is mounted (spec §3): ``GET /`` registration, ``GET
/info``, ``POST /`` invocations, ``POST /imagenotification``. Every answer carries the
``X-Sectra-*`` headers. Handlers get a context with a client for the invocation's callback URL
(``async def`` → trio client, needs trio mode; ``def`` → sync client, run in a worker thread).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import trio
from quart import Blueprint, Quart, Response, current_app, request

from sectra_core import schemas as s
from sectra_core import webhook as w
from sectra_core.webhook import released
from sectra_core.analysis_app import ACTIONS, AnalysisApp
from sectra_core.config import debug_enabled
from sectra_core.errors import ConfigurationError, ValidationError, safe_traceback
from sectra_core.plugins import default_plugins
from sectra_core.sansio import parse_image_notification, parse_invocation

from .app_context import AsyncInvocationContext, InvocationContext
from .asgi import AsgiServer
from .jobs import TrioJobRunner

__all__ = ["create_blueprint", "create_app", "AppServer", "released"]

log = logging.getLogger("sectra_transports.webhook")

#: Sectra may send a ``modify`` carrying a large result; Quart's default limit (16 MB) is too small.
MAX_INVOCATION_BYTES = 512 * 1024 * 1024


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


class _Dispatcher:
    """Turns one decoded message into the answer Sectra expects, calling the user's handler."""

    def __init__(self, app: AnalysisApp, job_runner: Any) -> None:
        self.app = app
        self._runner = job_runner if job_runner is not None else app.job_runner

    def runner(self) -> Any:
        if self._runner is None:
            mode = "trio" if _in_trio() else "asyncio"
            self._runner = (self.app.plugins or default_plugins()).make_job_runner(mode)
        if isinstance(self._runner, TrioJobRunner) and _in_trio():
            nursery = getattr(current_app, "nursery", None)
            if nursery is not None:
                self._runner.attach(nursery)
        return self._runner

    def _client_args(self, message: Any) -> dict[str, Any]:
        cb = message.callback_info
        return {"url": cb.url, "token": cb.token, "app_version": self.app.app_version, **self.app.client_options}

    async def answer(self, action: str, message: Any) -> bytes:
        handler = self.app.handler(action)
        runner = self.runner()
        token = getattr(message, "cancellation_token", None)
        if action == "cancel" and token and runner is not None:
            runner.cancel(token)
        if handler is None:
            return self._default(action, message)
        if inspect.iscoroutinefunction(handler):
            if not _in_trio():
                raise ConfigurationError("async handlers use the trio client: serve the app with mode='trio'")
            from .trio import AsyncSectraClient

            async with AsyncSectraClient(**self._client_args(message)) as client:
                ctx = AsyncInvocationContext(self.app, message, client, runner)
                value = await handler(ctx)
                if action in ("create", "modify"):
                    value = await ctx.store(value) if value is not None else self._nothing(action, message)
        else:
            if _in_trio() and runner is not None:
                runner = _FromThread(runner, trio.lowlevel.current_trio_token())
            value = await current_app.ensure_async(self._sync)(handler, action, message, runner)
        # delete/cancel/notification handlers return None ({} and [] are implied); anything else
        # is refused by encode_answer, as it would mean the handler expects an effect it has not.
        return w.encode_answer(action, value)

    def _sync(self, handler: Any, action: str, message: Any, runner: Any) -> Any:
        from .urllib3 import SectraClient

        with SectraClient(**self._client_args(message)) as client:
            ctx = InvocationContext(self.app, message, client, runner)
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


def create_blueprint(
    app: AnalysisApp, *, name: str = "sectra_app", url_prefix: str = "", job_runner: Any = None,
) -> Blueprint:
    """A Quart blueprint serving ``app``; mount it in your own Quart or quart-trio app."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix or None)
    dispatcher = _Dispatcher(app, job_runner)
    roots = ["", "/"] if url_prefix else ["/"]

    def reply(body: bytes, status: int = 200) -> Response:
        headers = {**app.response_headers(), "Content-Type": "application/json"}
        return Response(body, status=status, headers=headers)

    async def registration() -> Response:
        url = request.base_url.rstrip("/") if url_prefix else request.base_url
        return reply(w.registration_answer(app.registration, url))

    async def info() -> Response:
        return reply(w.info_answer(app.api_version, app.app_version))

    async def handle(action_of: Any, parse: Any) -> Response:
        request.max_content_length = MAX_INVOCATION_BYTES
        body = await request.get_data(as_text=False)
        try:
            message = parse(dict(request.headers), body)
            action = action_of(message)
            return reply(await dispatcher.answer(action, message))
        except Exception as exc:  # every failure becomes Sectra's {"error": ...} shape
            status, answer = w.error_answer(exc)
            if status >= 500:
                reveal = bool(current_app.config.get("SECTRA_DEBUG"))  # see create_app(debug=)
                log.error("the app failed to answer %s: %s", request.path, safe_traceback(exc, reveal=reveal))
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


def create_app(app: AnalysisApp, *, mode: str = "trio", url_prefix: str = "", job_runner: Any = None,
               debug: bool | None = None) -> Quart:
    """A whole ASGI app serving ``app``: quart-trio (``mode="trio"``) or Quart on asyncio.

    ``GET /healthz`` answers 200 ``ok`` (for container and load-balancer checks). ``debug``: log
    handler errors with their messages (default: ``SECTRA_DEBUG``; off, since they may quote PHI).
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
    asgi.config["MAX_CONTENT_LENGTH"] = MAX_INVOCATION_BYTES
    asgi.config["SECTRA_DEBUG"] = debug_enabled(debug)
    asgi.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    asgi.register_blueprint(create_blueprint(app, url_prefix=url_prefix, job_runner=job_runner))
    return asgi


async def _healthz() -> Response:
    return Response(b"ok\n", 200, content_type="text/plain")


class AppServer(AsgiServer):
    """Serve an analysis app on hypercorn's trio worker, in a trio nursery or a background thread.

    ``AppServer(create_app(app)).run()`` / ``await nursery.start(server.serve)``; ``url`` is the
    base URL (add the blueprint's ``url_prefix`` to get the registered URL).
    """

    def __init__(self, asgi_app: Any, *, graceful_timeout: float = 5.0) -> None:
        super().__init__(asgi_app, graceful_timeout=graceful_timeout, log=log, name="app")
