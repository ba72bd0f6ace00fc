"""``MockSectraServer``: a faithful stand-in for the Sectra side of the IA-API, for development and tests.

It always runs on trio (quart-trio served by hypercorn's trio worker). Two ways to run it:

* from sync code: ``with server.run(port=0): ...`` (or ``start()``/``stop()``) runs trio in a
  background thread;
* from trio code: ``await nursery.start(server.serve)`` runs it in the caller's nursery.

Either way it is the same Quart app, and it is stopped with hypercorn's shutdown trigger, never by
cancellation (hypercorn #184).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import msgspec
import trio

from sectra_core import schemas as s
from sectra_core.adapters import VersionAdapter, choose_adapter
from sectra_core.errors import ConfigurationError
from sectra_core.endpoints import Endpoint
from sectra_core.plugins import Plugins, default_plugins
from sectra_core.versions import parse_version

from sectra_transports.app.asgi import AsgiServer

from .app import MAX_REQUEST_BYTES, create_app
from .auth import MockAuth
from .caller import AppCaller, AsyncAppCaller, create_invocation
from .context import MockContext, MockHandler, MockRequest
from .demo_slides import DEMO_ACCESSION, DEMO_SLIDES, ensure_demo_slides
from .faults import Fault, FaultInjector, Faults
from .payloads import DiskFile, FileSource, SyntheticFile
from .slides import (
    DEFAULT_MPP,
    SlideFileError,
    SlideTooLargeError,
    TileCache,
    open_slide_files,
    synthetic_marker,
    tile_cache_bytes_from_env,
)
from .viewer import register_viewer
from .dicomweb import register_dicomweb
from .state import MAX_RESULTS_PER_SLIDE, MAX_STORED_RESULT_BYTES, MockState, disk_files, plausible_image_info

__all__ = ["MockSectraServer"]

log = logging.getLogger("sectra_mock")

def _positive_mpp(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of microns per pixel, not {value!r}")
    return float(value)


class MockSectraServer(AppCaller):
    """A mock Sectra Pathology server speaking the IA-API.

    ``api_version`` is an adapter name (``"5.0"``, ``"3.4"``) or an IA-API version (``"1.10"``,
    ``"1.9"``, ``"1.8"``); the mock answers ``/info`` with it and serves only the endpoints that
    version has.

    Slides: a fresh mock holds the demo slides (``demo_slides=True``: ``slide-001`` to
    ``slide-003``, real pixels, see :mod:`sectra_mock.demo_slides`); ``slide_files`` /
    :meth:`add_slide_files` add real slide files read by OpenSlide. An unknown slide id is a 404 on
    every route, as on a real server; ``invent_slides=True`` invents plausible metadata instead.
    ``tile_size``: the DZI tile size served (Sectra uses 240); ``tile_cache_bytes``: the byte
    budget of the encoded-tile cache (default ``$SECTRA_MOCK_TILE_CACHE_MB`` or 64 MiB; 0: off).
    ``default_mpp``: the ``micronsPerPixel`` of a slide file without a resolution of its own
    (default :data:`~sectra_mock.slides.DEFAULT_MPP`, 0.25; every Sectra client requires the
    field), with a warning naming the file.

    Bodies are read as tolerantly as a real server evidently reads them (spec §11.1): unknown
    fields are accepted and recorded in :attr:`warnings` (and logged). Every stored result
    (``POST`` and ``PUT``) is checked by the core's result rules (:mod:`sectra_core.app.rules`:
    points on the slide, polygon sizes, tag indexes, colours, ...): each finding is a warning naming
    the result, the JSON path and the rule. ``strict=True`` makes unknown fields a 400, a result
    with an error-level finding a 400 with the same text (nothing stored), and unknown applications
    a 404, so a client bug fails loudly. ``strict_bodies`` overrides ``strict`` for unknown fields
    alone.
    ``users`` maps usernames to passwords for ``/token`` login. ``graceful_timeout``: how long a
    stop waits for requests still in flight (idle keep-alive connections close at once).
    ``latency``: seconds added before every answer, to model the network distance to a PACS.
    ``faults``: misbehaviours to inject from the start (more with ``server.faults.add``).
    ``callback_host``: the host name apps are told to call back (default: the bound address).
    ``clock``: monotonic seconds for token expiry (default ``time.monotonic``); a test passes a
    fake one and advances it instead of sleeping.

    Endpoint handlers come from the ``sectra_register_mock_handlers`` hook of ``plugins`` (the
    built-ins are a plugin too), so a plugin adapter's extra endpoint is answered by its plugin's
    handler; one without a handler answers 501.

    Tokens: ``token`` is the operator's (yours, for tests and scripts) and reaches every
    application. Every token the mock hands out is bound to one application and is refused
    (403) on another's ``/applications/{app}`` routes: the one in an invocation's
    ``callbackInfo`` (:meth:`app_token`), in launch data, and from ``/token`` login.
    ``session_token``: the IDS7 user session that external launches carry (random per mock
    unless given); ``/launchdata`` answers only for requests started with :meth:`launch`.

    Limits (the mock keeps results in memory): ``max_request_bytes`` (default 64 MiB) caps a
    request body, past it the answer is 413; ``max_results_per_slide`` (default 10,000 per
    application and slide) and ``max_stored_result_bytes`` (default 512 MiB of result JSON in
    all) cap what is kept, past them the answer is 507.
    """

    def __init__(
        self,
        *,
        token: str = "dev-token",
        api_version: str = "1.10",
        software_version: str | None = None,
        slides: Mapping[str, s.ImageInfo] | Iterable[s.ImageInfo] | None = None,
        slide_files: Mapping[str, Path | str | list[Path | str]] | None = None,
        strict: bool = False,
        strict_bodies: bool | None = None,
        invent_slides: bool = False,
        demo_slides: bool = True,
        tile_size: int = 240,
        tile_cache_bytes: int | None = None,
        default_mpp: float = DEFAULT_MPP,
        users: Mapping[str, str] | None = None,
        session_token: str | None = None,
        token_lifetime: int = 3600,
        graceful_timeout: float = 3.0,
        latency: float = 0.0,
        faults: Iterable[Fault | Mapping[str, Any]] = (),
        callback_host: str | None = None,
        plugins: Plugins | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_results_per_slide: int = MAX_RESULTS_PER_SLIDE,
        max_stored_result_bytes: int = MAX_STORED_RESULT_BYTES,
    ) -> None:
        if not token:
            raise ConfigurationError("the mock needs a non-empty token")
        if session_token is not None and not session_token:
            raise ConfigurationError("the mock's session_token must not be empty (None: a random one)")
        for name, limit in [("max_request_bytes", max_request_bytes), ("max_results_per_slide", max_results_per_slide),
                            ("max_stored_result_bytes", max_stored_result_bytes)]:
            if limit < 1:
                raise ConfigurationError(f"{name} must be at least 1, not {limit}")
        plugins = plugins or default_plugins()
        adapters = plugins.adapters()
        named = adapters.get(api_version) or adapters.get(f"v{api_version}")
        if named is not None:
            self.adapter: VersionAdapter = named
            self.api_version = named.api_version
        else:
            self.adapter = choose_adapter(adapters.values(), api_version)
            self.api_version = api_version
        self.software_version = software_version or self.adapter.software_version
        #: Monotonic seconds, for token expiry (``ctx.clock`` in handlers).
        self.clock = clock
        #: Tokens, logins and launches (``ctx.auth`` in handlers). The IDS7 user session external
        #: launches carry (spec §4.3 ``%user_session%``) is random unless given, so that nobody
        #: who merely reaches the mock can fetch launch data (issue 12, hole 1).
        self.auth = MockAuth(
            token=token, users=users or {}, session_token=session_token or secrets.token_urlsafe(32),
            token_lifetime=token_lifetime, clock=clock,
        )
        self.max_request_bytes = max_request_bytes
        self.strict_bodies = strict if strict_bodies is None else strict_bodies
        #: What the mock accepted but a stricter server might not (unknown fields, results breaking
        #: a rule, files that are not slides), oldest first; tests read it. Each is logged as a
        #: warning too. Each reads as a string; those about a result are
        #: :class:`~sectra_mock.notices.MockWarning` (``app_id``, ``slide_id``, ``result_id``,
        #: ``path``, ``rule``).
        self.warnings: list[str] = []
        self._warn_lock = threading.Lock()
        if tile_size < 1:
            raise ConfigurationError("tile_size must be >= 1")
        self.default_mpp = _positive_mpp(default_mpp, "default_mpp")
        self.tile_size = tile_size
        self.tile_cache = TileCache(tile_cache_bytes_from_env() if tile_cache_bytes is None else tile_cache_bytes)
        #: Worker threads decoding and encoding tiles at once (the event loop stays free).
        self.tile_threads = 4
        self._limiter: tuple[trio.lowlevel.TrioToken, trio.CapacityLimiter] | None = None
        self.graceful_timeout = graceful_timeout
        self.latency = latency
        self.callback_host = callback_host
        self.state = MockState(strict=strict, invent_slides=invent_slides, max_results_per_slide=max_results_per_slide,
                               max_stored_result_bytes=max_stored_result_bytes)
        if demo_slides:
            self._add_demo_slides()
        for info in (slides.values() if isinstance(slides, Mapping) else slides or ()):
            self.add_slide(info)
        for slide_id, paths in (slide_files or {}).items():
            self.add_slide_files(slide_id, paths)
        #: Endpoint name -> handler, from every plugin's ``sectra_register_mock_handlers``.
        self.handlers: dict[str, MockHandler] = plugins.mock_handlers()
        self.app = create_app(self)
        #: The key of the slide viewer (``/viewer``, see :meth:`viewer_url`), random per mock.
        self.viewer_key = secrets.token_urlsafe(16)
        register_viewer(self.app, self)
        #: The DICOMweb archive at ``/dicomweb`` (QIDO, WADO, STOW of ANN/SR; see :mod:`sectra_mock.dicomweb`).
        self.dicomweb = register_dicomweb(self.app, self)
        #: Injected faults (see :mod:`sectra_mock.faults`): ``server.faults.add("status", "image_info")``.
        self.faults = Faults()
        for fault in faults or ():
            self.faults.insert(fault if isinstance(fault, Fault) else Fault(**fault))
        self._routes = self.app.url_map.bind("mock")
        self._server = AsgiServer(
            FaultInjector(self.app, self.faults, self._route_of), graceful_timeout=graceful_timeout, log=log, name="mock",
        )
        # The calls to apps (trigger, modify, cancel, delete, notify, check_app) are AppCaller's,
        # written once in _caller_async.py: each builds its message from this server's state.
        AppCaller.__init__(self, self)
        #: The same calls to apps from trio code: ``await server.aio.trigger(...)``.
        self.aio = AsyncAppCaller(self)

    def __repr__(self) -> str:
        where = self._server.url if self._server.running else "not running"
        return f"<MockSectraServer {where} IA-API {self.api_version}>"

    # --- configuration ---------------------------------------------------------------------------

    def _route_of(self, path: str, method: str) -> str | None:
        try:
            endpoint, _args = self._routes.match(path, method=method)
        except Exception:  # werkzeug's NotFound / MethodNotAllowed: not an endpoint of this version
            return None
        return str(endpoint)

    def endpoints(self) -> dict[str, Endpoint]:
        """The endpoints this server serves: the adapter's, gated by the reported IA-API version."""
        version = parse_version(self.api_version)
        return {n: e for n, e in self.adapter.endpoints.items() if parse_version(e.since) <= version}

    def add_slide(self, info: s.ImageInfo, *, label: bytes | None = b"") -> None:
        """Add (or replace) a slide's metadata. ``label=None``: the slide has no label (204).

        A slide that has pixels keeps them while its ``imageSize`` stays the same."""
        self.tile_cache.drop(info.id)
        self.state.add_slide(info, label=label)

    def add_slide_files(
        self, slide_id: str, files: Path | str | Iterable[Path | str], *, info: s.ImageInfo | None = None,
        mpp: float | None = None,
    ) -> s.ImageInfo:
        """Serve these files on disk (read in chunks on each request) as the slide's files.

        When OpenSlide reads them (any one file of a multi-file slide such as DICOM WSI), the
        slide's size, MPP, file format, stored tile format, label and tiles come from the pixels;
        the LIS and PHI fields are invented (or taken from ``info``). ``mpp``: the
        ``micronsPerPixel`` reported when the file has no resolution of its own (default the
        server's ``default_mpp``), with a warning naming the file. Files that are not a slide are
        still served, with clearly synthetic metadata (``stationName: SYNTHETIC``) and a warning.
        Returns the slide's metadata.
        """
        fallback = self.default_mpp if mpp is None else _positive_mpp(mpp, "mpp")
        sources = disk_files(files)
        paths = [src.path for src in sources if isinstance(src, DiskFile)]
        base = info or plausible_image_info(slide_id)
        old = self.state.slide(slide_id) if self.state.has_slide(slide_id) else None
        if old is not None and old.image is not None:
            self.tile_cache.drop(slide_id)
        reasons: list[str] = []
        try:
            image = open_slide_files(paths, self.tile_size, reasons=reasons)
        except SlideTooLargeError as exc:  # a slide, but its tiles would cost gigabytes each
            image = None
            self.warn(f"slide {slide_id!r}: refused as a slide: {exc}; served as files with synthetic metadata "
                      "and one-colour tiles")
        else:
            if image is None:
                why = f" ({reasons[0]})" if reasons else ""
                self.warn(f"slide {slide_id!r}: {', '.join(p.name for p in paths[:3])} is not a slide OpenSlide can "
                          f"read{why}; served as files with synthetic metadata and one-colour tiles")
        if image is None:
            synthetic = synthetic_marker(base, paths) if info is None else base
            self.state.add_slide(synthetic, label=b"" if old is None else old.label, files=sources)
            return synthetic
        for note in image.notes(fallback):
            self.warn(f"slide {slide_id!r}: {note}")
        full = msgspec.structs.replace(base, id=slide_id, **image.image_fields(fallback))
        try:
            label = image.label_png()
        except SlideFileError as exc:
            self.warn(f"slide {slide_id!r}: {exc}; served without a label (204)")
            label = None
        self.state.add_slide(full, label=label, image=image, files=sources)
        return full

    def _add_demo_slides(self) -> None:
        try:
            found = ensure_demo_slides()
        except ImportError as exc:  # pragma: no cover - the mock extra installs numpy/Pillow/pydicom
            self.warn(f"demo slides need the slides extra ({exc}); slide-001..003 get synthetic metadata")
            for demo in DEMO_SLIDES:
                self.state.add_slide(synthetic_marker(plausible_image_info(demo.slide_id, DEMO_ACCESSION), []))
            return
        for demo in DEMO_SLIDES:
            base = plausible_image_info(demo.slide_id, DEMO_ACCESSION)
            base = msgspec.structs.replace(
                base, staining=s.DisplayName(display_name=demo.staining), block=s.DisplayName(display_name=demo.block),
                lis_slide_id=f"DEMO-{demo.slide_id} {demo.block} 1 {demo.staining}",
            )
            self.add_slide_files(demo.slide_id, found[demo.slide_id], info=base)

    def tile_limiter(self) -> trio.CapacityLimiter:
        """The limiter of tile worker threads (``tile_threads``), one per trio run."""
        token = trio.lowlevel.current_trio_token()
        if self._limiter is None or self._limiter[0] is not token:
            self._limiter = (token, trio.CapacityLimiter(self.tile_threads))
        return self._limiter[1]

    def warn(self, message: str) -> None:
        """Record ``message`` in :attr:`warnings` and log it (never a token or PHI: callers pass
        field paths, file names and slide ids only). A :class:`~sectra_mock.notices.MockWarning`
        keeps what it is about (the viewer shows it beside that result)."""
        with self._warn_lock:
            self.warnings.append(message)
        log.warning("%s", message)

    def add_synthetic_slide(self, slide_id: str, size_bytes: int, n_files: int = 1) -> list[FileSource]:
        """Serve ``n_files`` generated files totalling ``size_bytes`` (no disk, constant memory)
        as the slide's files, instead of any it had (a demo slide keeps its metadata and pixels)."""
        if n_files < 1 or size_bytes < 0:
            raise ConfigurationError("n_files must be >= 1 and size_bytes >= 0")
        base, extra = divmod(size_bytes, n_files)
        sources: list[FileSource] = [
            SyntheticFile(name=f"i{i:04d},0000b.dcm", size=base + (1 if i < extra else 0), seed=i)
            for i in range(n_files)
        ]
        self.state.add_files(slide_id, sources, replace=True)
        return sources

    @property
    def max_results_per_slide(self) -> int:
        """How many results one application may keep on one slide (507 past it)."""
        return self.state.max_results_per_slide

    @property
    def max_stored_result_bytes(self) -> int:
        """How many bytes of result JSON the mock keeps in all (507 past it)."""
        return self.state.max_stored_result_bytes

    @property
    def token(self) -> str:
        """The operator's token: reaches every application."""
        return self.auth.token

    @property
    def users(self) -> dict[str, str]:
        """Usernames and passwords for ``/token`` login."""
        return self.auth.users

    @property
    def session_token(self) -> str:
        """The IDS7 user session external launches carry."""
        return self.auth.session_token

    @property
    def token_lifetime(self) -> int:
        """Seconds a ``/token`` token lives (by :attr:`clock`)."""
        return self.auth.token_lifetime

    @property
    def logins(self) -> int:
        """How many ``/token`` logins succeeded."""
        return self.auth.logins

    def issue_token(self, application_id: str) -> str:
        """A fresh bearer token for ``application_id``, valid ``token_lifetime`` seconds (what
        ``/token`` hands out); refused on other applications' routes."""
        return self.auth.issue_token(application_id)

    def revoke_tokens(self) -> None:
        """Invalidate every token issued by ``/token`` (as expiry would); the operator's ``token``
        and the applications' callback tokens stay."""
        self.auth.revoke_tokens()

    def app_token(self, application_id: str) -> str:
        """The callback token the mock gives ``application_id`` (in invocations' ``callbackInfo``
        and in launch data): random, the same for the mock's lifetime, bound to that application."""
        return self.auth.app_token(application_id)

    def token_scope(self, token: str) -> str | None | Literal[False]:
        """What ``token`` may reach: ``None`` every application (the operator's ``token``), an
        application id only that application, ``False`` nothing (unknown or expired)."""
        return self.auth.token_scope(token)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is valid at all (the operator's, an application's, or an unexpired
        issued one); :meth:`token_scope` says for which applications."""
        return self.auth.token_scope(token) is not False

    def launch(self, request_id: str, *, application_id: str | None = None) -> str:
        """Launch an external app on a case, as IDS7 does: returns the ``launchUrl`` the app is
        opened with (``{url}/launchdata?requestId=...&sessionToken=...``, spec §4.3). Only launched
        requests have launch data; ``application_id`` limits it to that application."""
        self.auth.record_launch(request_id, application_id)
        query = urlencode({"requestId": request_id, "sessionToken": self.session_token})
        return f"{self._public_url()}/launchdata?{query}"

    def launched(self, request_id: str) -> tuple[bool, str | None]:
        """Whether ``request_id`` was launched, and the application it was launched for."""
        return self.auth.launched(request_id)

    def context(self, request: MockRequest) -> MockContext:
        """The context a handler gets for ``request``: this server's parts, not the server."""
        return MockContext(
            adapter=self.adapter, state=self.state, auth=self.auth, clock=self.clock,
            info=s.ApplicationInfo(api_version=self.api_version, software_version=self.software_version),
            tile_cache=self.tile_cache, tile_limiter=self.tile_limiter,
            background=getattr(self.app, "nursery", None), public_url=self._public_url(),
            warn=self.warn, request=request,
        )

    def add_attachment(self, app_id: str, result_id: int | str, name: str, data: bytes) -> None:
        """Attach bytes to a stored result (served by the attachments endpoint, with Range)."""
        self.state.add_attachment(app_id, str(result_id), name, data)

    def get_results(self, app_id: str, slide_id: str) -> list[s.ResultResponse]:
        """The results ``app_id`` stored on ``slide_id``, oldest first (read in-process)."""
        return self.state.results_for_slide(app_id, slide_id)

    def image_info(self, slide_id: str) -> s.ImageInfo:
        """The slide's full metadata as the mock holds it (an unknown id raises ``Missing`` unless
        ``invent_slides``)."""
        return self.state.slide(slide_id).info

    # --- running ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8001``."""
        return self._server.url

    def viewer_url(self, slide_id: str | None = None) -> str:
        """The address of the mock's slide viewer, with its key: the slides at ``/viewer``, or one
        slide with every stored result drawn over it (``slide_id``). Open it in a browser."""
        path = "/viewer" if slide_id is None else f"/viewer/{quote(slide_id, safe='')}"
        return f"{self.url}{path}?{urlencode({'key': self.viewer_key})}"

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self.url.rsplit(":", 1)[1])

    async def serve(
        self, *, host: str = "127.0.0.1", port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until :meth:`shutdown`; reports the base URL through ``task_status``.

        Use as ``url = await nursery.start(server.serve)``.
        """
        self._server.graceful_timeout = self.graceful_timeout
        await self._server.serve(host=host, port=port, task_status=task_status)

    async def aclose(self) -> None:
        """Stop a server running in this trio run and wait until it has stopped."""
        await self._server.aclose()

    @asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[MockSectraServer]:
        """``async with server.serving():`` serve in a nursery of its own for the block's duration."""
        async with self._server.serving(host=host, port=port):
            yield self

    def shutdown(self) -> None:
        """Ask a running server to stop gracefully (from any thread)."""
        self._server.shutdown()

    def start(self, port: int = 0, host: str = "127.0.0.1", timeout: float = 10.0) -> MockSectraServer:
        """Run the server in a background thread; returns once it accepts connections."""
        self._server.graceful_timeout = self.graceful_timeout
        self._server.start(port=port, host=host, timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start` and wait for its thread."""
        self.close_connections()
        self._server.stop()

    @contextmanager
    def run(self, port: int = 0, host: str = "127.0.0.1") -> Iterator[MockSectraServer]:
        """``with server.run(port=0):`` serve in a background thread for the block's duration."""
        self.start(port=port, host=host)
        try:
            yield self
        finally:
            self.stop()

    def __enter__(self) -> MockSectraServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- talking to apps -------------------------------------------------------------------------
    # trigger / modify / cancel / delete / notify / check_app are inherited from AppCaller (written
    # once in _caller_async.py): each builds its message from this server (sectra_mock.app_messages)
    # and sends it through the caller's pooled transport, one layer. ``server.aio`` has the same on trio.

    def _public_url(self) -> str:
        # callback_host replaces the host, for apps that reach the mock by another name (an app
        # in a container calling host.docker.internal).
        if self.callback_host:
            return f"http://{self.callback_host}:{self.port}"
        return self.url

    def callback_info(self, application_id: str | None = None) -> s.CallbackInfo:
        """Callback info pointing at this server, as put into invocations for ``application_id``
        (its :meth:`app_token`); ``None`` gives the operator's ``token``, valid for every app.

        ``callback_host`` replaces the host in it, for apps that reach the mock by another name
        (an app in a container calling ``host.docker.internal``).
        """
        token = self.token if application_id is None else self.app_token(application_id)
        return s.CallbackInfo(url=self._public_url(), token=token)

    def build_create(
        self, application_id: str, slide_id: str, *, input: s.CreateInput | None = None,
        context: Any = None,
    ) -> s.CreateInvocation:
        """A realistic ``create`` invocation (whole slide unless ``input`` says otherwise)."""
        return create_invocation(self, application_id, slide_id, input, context)
