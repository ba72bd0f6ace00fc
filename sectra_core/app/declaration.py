"""An analysis app declared as data: its registration, its version, and a handler per action.

    app = AnalysisApp(application_id="tissue", display_name="Tissue finder", manufacturer="Acme",
                      app_version="1.2.0")

    @app.on_create
    async def create(ctx):                      # async def → trio client; def → sync client
        info = await ctx.client.get_image_metadata(ctx.slide_id)
        return PrimitiveBuilder(Pyramid.from_image_info(info)).label((0.1, 0.1), "hi").build(...)

Nothing here does I/O: :func:`sectra_transports.app.server.create_app` serves the declaration over
HTTP and hands each handler a context with a ready client. Handlers that are not declared get
Sectra's default answers: ``modify`` echoes the result unchanged, ``delete`` and notifications
answer ``{}``, ``cancel`` answers ``[]`` after cancelling a background job started for the same
``cancellationToken``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from .. import schemas as s
from ..config import env_limit
from ..errors import ConfigurationError, UntrustedOriginError
from .origins import TRUSTED_CALLBACKS_ENV, TrustedOrigins
from .messages import response_headers

__all__ = ["ACTIONS", "AnalysisApp", "Handler", "MAX_INVOCATION_BYTES", "MAX_INVOCATION_BYTES_ENV", "DEDUP_WINDOW"]

#: What Sectra can ask of an app: the four invocation actions and image notifications.
ACTIONS: Final = ("create", "modify", "cancel", "delete", "notification")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)

#: Default cap on one invocation or notification body. Invocations are kilobytes (spec §5.3); a
#: ``modify``/``delete`` carries one whole result, so apps with huge results may need more.
MAX_INVOCATION_BYTES: Final = 1024 * 1024
#: The environment variable read when ``max_invocation_bytes`` is not given.
MAX_INVOCATION_BYTES_ENV: Final = "SECTRA_MAX_INVOCATION_BYTES"
#: The environment variable read when ``queue`` is not given.
QUEUE_ENV: Final = "SECTRA_QUEUE"
#: Default seconds during which a repeated invocation gets the first one's answer.
DEDUP_WINDOW: Final = 60.0



class AnalysisApp:
    """The declaration of one analysis app (spec §3, §5.2).

    ``registration`` may be given whole, or built from ``application_id``, ``display_name``,
    ``manufacturer``, ``input_type`` (``wholeSlide``, ``taggedPolygon``, ``multiArea``), ``tags``
    and ``context``. ``url`` is filled in from each registration request. ``api_version``: the
    minimum IA-API version the app needs (reported on ``/info`` and in ``X-Sectra-ApiVersion``).
    ``client_options`` go to every client the toolkit creates (e.g. ``verify="/etc/ca.pem"``).
    ``job_runner``: where :meth:`start_job <sectra_transports.app.contexts.AsyncInvocationContext.start_job>`
    runs work; None asks the ``sectra_make_job_runner`` hook.

    Hardening (docs/reliability.md, "Security"):

    * ``trusted_callbacks``: the origins (``https://pacs.example.org``) whose ``callbackInfo.url``
      the app may call; None reads ``SECTRA_TRUSTED_CALLBACKS`` (comma-separated). Invocations
      naming any other origin are refused with 403 before any request. With none configured,
      every invocation is refused: an app that calls whatever URL it is sent is an open proxy.
      ``client_options["credentials"]`` needs this list, so a password only goes to those origins.
    * ``max_invocation_bytes``: the largest invocation body read (default 1 MiB, or
      ``SECTRA_MAX_INVOCATION_BYTES``); larger ones get 413 before they are buffered.
    * ``dedup_window``: seconds during which a repeated copy of an invocation (same body, token
      included) gets the first copy's answer instead of running again; 0 turns it off.

    ``queue``: run background jobs on ``sectra worker`` processes through a durable queue
    (``sqlite:///jobs.db`` or ``redis://host:6379/0``; None reads ``SECTRA_QUEUE``; needs the
    ``queue`` extra). See docs/app-guide.md, "Running analyses on workers".
    """

    def __init__(
        self,
        registration: s.Registration | None = None,
        *,
        application_id: str | None = None,
        display_name: str | None = None,
        manufacturer: str | None = None,
        input_type: str = s.InputType.WHOLE_SLIDE,
        tags: Sequence[str] | None = None,
        context: Mapping[str, Any] | None = None,
        app_version: str = "0.1.0",
        api_version: str = "1.8",
        client_options: Mapping[str, Any] | None = None,
        job_runner: Any = None,
        plugins: Any = None,
        trusted_callbacks: Iterable[str] | None = None,
        max_invocation_bytes: int | None = None,
        dedup_window: float = DEDUP_WINDOW,
        queue: str | None = None,
    ) -> None:
        if registration is None:
            if not (application_id and display_name and manufacturer):
                raise ConfigurationError(
                    "an app needs registration= or application_id, display_name and manufacturer"
                )
            content = None
            if input_type == s.InputType.TAGGED_POLYGON:
                content = s.InputTemplateContent(tags=list(tags or []))
            elif tags:
                raise ConfigurationError("tags only apply to the taggedPolygon input type")
            registration = s.Registration(
                application_id=application_id, display_name=display_name, manufacturer=manufacturer,
                url="", input_template=s.InputTemplate(type=input_type, content=content),
                context=dict(context or {}),
            )
        self.registration = registration
        self.app_version = app_version
        self.api_version = api_version
        self.client_options = dict(client_options or {})
        #: The callback origins this app calls back (explicit, else ``SECTRA_TRUSTED_CALLBACKS``).
        self.trusted_callbacks = (
            TrustedOrigins.from_env() if trusted_callbacks is None else TrustedOrigins(trusted_callbacks)
        )
        if self.client_options.get("credentials") is not None and not self.trusted_callbacks:
            # A callback URL comes from whoever POSTs the invocation; a 401 from it would make the
            # client send the Basic credentials there (spec §4.2). Only listed origins may get them.
            raise UntrustedOriginError(
                "client_options['credentials'] needs trusted_callbacks (or "
                f"{TRUSTED_CALLBACKS_ENV}): the credentials would go to any callback URL an invocation names"
            )
        if max_invocation_bytes is None:
            max_invocation_bytes = env_limit(MAX_INVOCATION_BYTES_ENV, MAX_INVOCATION_BYTES)
        if max_invocation_bytes <= 0:
            raise ConfigurationError(f"max_invocation_bytes must be positive, got {max_invocation_bytes}")
        self.max_invocation_bytes = max_invocation_bytes
        if dedup_window < 0:
            raise ConfigurationError(f"dedup_window must be 0 (off) or positive, got {dedup_window}")
        self.dedup_window = float(dedup_window)
        self.job_runner = job_runner
        #: The job queue's URL (issue #16), or None: jobs run in the serving process.
        self.queue = queue if queue is not None else (os.environ.get(QUEUE_ENV, "").strip() or None)
        if self.queue is not None and job_runner is not None:
            raise ConfigurationError("give an app queue= or job_runner=, not both")
        self.plugins = plugins
        self._handlers: dict[str, Handler] = {}

    def __repr__(self) -> str:
        return f"<AnalysisApp {self.application_id} {self.app_version} handles {sorted(self._handlers)}>"

    @property
    def application_id(self) -> str:
        """The application id Sectra knows the app by."""
        return self.registration.application_id

    def response_headers(self) -> dict[str, str]:
        """The ``X-Sectra-*`` headers on every answer (spec §2.2)."""
        return response_headers(self.api_version, self.app_version)

    def handler(self, action: str) -> Handler | None:
        """The handler registered for ``action`` (see :data:`ACTIONS`), or None."""
        return self._handlers.get(action)

    def is_async(self, action: str) -> bool:
        """Whether ``action``'s handler is ``async def`` (and so gets the trio client)."""
        handler = self._handlers.get(action)
        return handler is not None and inspect.iscoroutinefunction(handler)

    def on(self, action: str) -> Callable[[H], H]:
        """Decorator registering a handler for ``action``; one handler per action."""
        if action not in ACTIONS:
            raise ConfigurationError(f"unknown action {action!r}; one of {ACTIONS}")

        def register(func: H) -> H:
            if action in self._handlers:
                raise ConfigurationError(f"{action!r} already has a handler ({self._handlers[action].__name__})")
            self._handlers[action] = func
            return func

        return register

    def on_create(self, func: H) -> H:
        """Handle ``create``: return a Result (stored for you) or the stored ResultResponse."""
        return self.on("create")(func)

    def on_modify(self, func: H) -> H:
        """Handle ``modify`` (the user edited a result or pressed a gallery button)."""
        return self.on("modify")(func)

    def on_cancel(self, func: H) -> H:
        """Handle ``cancel``; the toolkit has already cancelled a job with the same token."""
        return self.on("cancel")(func)

    def on_delete(self, func: H) -> H:
        """Handle ``delete`` (informational; the result is deleted whatever the handler does)."""
        return self.on("delete")(func)

    def on_notification(self, func: H) -> H:
        """Handle an image notification (new slide files were imported)."""
        return self.on("notification")(func)
