"""An analysis app declared as data: its registration, its version, and a handler per action.

    app = AnalysisApp(application_id="tissue", display_name="Tissue finder", manufacturer="Acme",
                      app_version="1.2.0")

    @app.on_create
    async def create(ctx):                      # async def → trio client; def → sync client
        info = await ctx.client.get_image_metadata(ctx.slide_id)
        return PrimitiveBuilder(Pyramid.from_image_info(info)).label((0.1, 0.1), "hi").build(...)

Nothing here does I/O: :func:`sectra_transports.webhook.create_app` serves the declaration over
HTTP and hands each handler a context with a ready client. Handlers that are not declared get
Sectra's default answers: ``modify`` echoes the result unchanged, ``delete`` and notifications
answer ``{}``, ``cancel`` answers ``[]`` after cancelling a background job started for the same
``cancellationToken``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

from . import schemas as s
from .errors import ConfigurationError
from .sansio import response_headers

__all__ = ["ACTIONS", "AnalysisApp", "Handler"]

#: What Sectra can ask of an app: the four invocation actions and image notifications.
ACTIONS: Final = ("create", "modify", "cancel", "delete", "notification")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


class AnalysisApp:
    """The declaration of one analysis app (spec §3, §5.2).

    ``registration`` may be given whole, or built from ``application_id``, ``display_name``,
    ``manufacturer``, ``input_type`` (``wholeSlide``, ``taggedPolygon``, ``multiArea``), ``tags``
    and ``context``. ``url`` is filled in from each registration request. ``api_version``: the
    minimum IA-API version the app needs (reported on ``/info`` and in ``X-Sectra-ApiVersion``).
    ``client_options`` go to every client the toolkit creates (e.g. ``verify="/etc/ca.pem"``).
    ``job_runner``: where :meth:`start_job <sectra_transports.app_context.AsyncInvocationContext.start_job>`
    runs work; None asks the ``sectra_make_job_runner`` hook.
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
        self.job_runner = job_runner
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
