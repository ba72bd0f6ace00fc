"""Building plugin managers: built-ins, then entry points, then a typed facade over ``pm.hook``.

Two paths, one each: the SDK's own plugins are the modules in :data:`DEFAULT_PLUGINS`; every
other plugin arrives through the ``sectra`` entry-point group. The hooks are in
:mod:`sectra_core.hookspecs`; call sites use :class:`Plugins`, whose methods return precise types.

Environment:

* ``SECTRA_LOAD_PLUGINS``: comma-separated distribution names; only their ``sectra`` entry points
  load (the built-ins always load). Empty string: no entry points at all.
* ``SECTRA_TRACE_PLUGINS``: any non-empty value logs every hook call at DEBUG level on the
  ``sectra_core.plugins`` logger.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pluggy

from .adapters import VersionAdapter
from .errors import ConfigurationError
from .hookspecs import PROJECT, JobRunner, MockHandler, SectraSpecs
from .transport import AsyncTransport, SyncTransport, TransportFactory, TransportKind, TransportOptions


__all__ = [
    "BUILTIN_TRANSPORTS", "DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "Plugins", "make_plugins", "default_plugins",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT

#: The SDK's own plugins, by registration name and module, registered before any entry point.
#: Each module imports only ``sectra_core`` at load time (transports and the mock's handlers are
#: imported when first used), so building a plugin manager never imports trio, urllib3 or Quart.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("sectra-adapter-v3_4", "sectra_core.adapters.v3_4"),
    ("sectra-adapter-v5_0", "sectra_core.adapters.v5_0"),
    ("sectra-transports", "sectra_transports.plugin"),
    ("sectra-job-runners", "sectra_transports.app.plugin"),
    ("sectra-mock", "sectra_mock.plugin"),
)

#: The transport a client uses when it is not given ``transport=``: the one of the module it is
#: imported from (``sectra_transports.urllib3`` / ``sectra_transports.trio``), never a plugin's.
BUILTIN_TRANSPORTS: dict[TransportKind, str] = {"sync": "urllib3", "async": "trio"}

K = TypeVar("K")
V = TypeVar("V")


class Plugins:
    """A typed facade over one pluggy ``PluginManager``.

    Call sites use these methods instead of ``pm.hook`` so that mypy sees what each hook yields.
    Registrations are collected on first use and cached; :meth:`register` clears the cache.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._adapters: dict[str, VersionAdapter] | None = None
        self._transports: dict[str, TransportFactory] | None = None
        self._lock = threading.Lock()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin (a module or object with hook implementations)."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        with self._lock:
            self._adapters = None
            self._transports = None

    # --- adapters ---------------------------------------------------------------------------------

    def adapters(self) -> dict[str, VersionAdapter]:
        """Every registered adapter by name; later registrations replace earlier ones."""
        with self._lock:
            if self._adapters is None:
                found: dict[str, VersionAdapter] = {}

                def register(adapter: VersionAdapter) -> None:
                    # pluggy calls the most recently registered plugin first, so the first
                    # registration of a name wins: third-party plugins override built-ins.
                    found.setdefault(adapter.name, adapter)

                self.pm.hook.sectra_register_adapters(register=register)
                self._adapters = found
            return dict(self._adapters)

    def adapter(self, name: str) -> VersionAdapter:
        """The adapter registered as ``name`` (e.g. ``"v3.4"``); accepts ``"3.4"`` too."""
        adapters = self.adapters()
        key = name if name in adapters else f"v{name}"
        try:
            return adapters[key]
        except KeyError:
            raise ConfigurationError(
                f"no API-version adapter {name!r}; known: {', '.join(sorted(adapters))}"
            ) from None

    # --- transports -------------------------------------------------------------------------------

    def transports(self) -> dict[str, TransportFactory]:
        """Every registered transport by name (``urllib3`` and ``trio`` are the built-ins).

        Raises :class:`ConfigurationError` naming both plugins when two register the same name:
        which one a client would get must never depend on installation order.
        """
        with self._lock:
            if self._transports is None:
                self._transports = self._by_name("sectra_register_transports", "transport", _by_factory_name)
            return dict(self._transports)

    def sync_transport(self, transport: SyncTransport | str | None, options: TransportOptions) -> SyncTransport:
        """The transport a ``SectraClient`` uses: ``transport`` itself when it is an object, the
        registered one it names, or the built-in ``urllib3`` when None."""
        if transport is not None and not isinstance(transport, str):
            return transport
        made = self._factory(transport, "sync").create(options)
        if not isinstance(made, SyncTransport):
            raise ConfigurationError(f"the transport {transport!r} did not make a sync transport (handle_request, close, sleep)")
        return made

    def async_transport(self, transport: AsyncTransport | str | None, options: TransportOptions) -> AsyncTransport:
        """The transport an ``AsyncSectraClient`` uses: ``transport`` itself when it is an object,
        the registered one it names, or the built-in ``trio`` when None."""
        if transport is not None and not isinstance(transport, str):
            return transport
        made = self._factory(transport, "async").create(options)
        if not isinstance(made, AsyncTransport):
            raise ConfigurationError(
                f"the transport {transport!r} did not make an async transport (handle_async_request, aclose, sleep)"
            )
        return made

    def _factory(self, name: str | None, kind: TransportKind) -> TransportFactory:
        known = self.transports()
        name = BUILTIN_TRANSPORTS[kind] if name is None else name
        client = "SectraClient" if kind == "sync" else "AsyncSectraClient"
        usable = sorted(n for n, f in known.items() if f.kind == kind)
        factory = known.get(name)
        if factory is None:
            raise ConfigurationError(
                f"no transport named {name!r}; {client} can use: {', '.join(usable) or 'none'}"
                " (a plugin adds one with the sectra_register_transports hook)"
            )
        if factory.kind != kind:
            raise ConfigurationError(
                f"the transport {name!r} is {factory.kind}, but {client} needs a {kind} one: {', '.join(usable)}"
            )
        return factory

    # --- the mock ---------------------------------------------------------------------------------

    def mock_handlers(self) -> dict[str, MockHandler]:
        """The mock's endpoint handlers by endpoint name, from every plugin (built-ins included).

        Collected afresh for each call (a mock server calls it once when built). Raises
        :class:`ConfigurationError` naming both plugins when two handle the same endpoint.
        """
        return self._by_name("sectra_register_mock_handlers", "mock handler", lambda register: register)

    # --- analysis apps ----------------------------------------------------------------------------

    def make_job_runner(self, mode: str) -> JobRunner | None:
        """A background-job runner for an app served in ``mode`` (``"trio"`` or ``"asyncio"``)."""
        runner: JobRunner | None = self.pm.hook.sectra_make_job_runner(mode=mode)
        return runner

    # --- helpers ----------------------------------------------------------------------------------

    def _by_name(
        self, hook: str, what: str, adapt: Callable[[Callable[[str, V], None]], Callable[..., None]],
    ) -> dict[str, V]:
        """Call ``hook`` plugin by plugin, so that a name registered twice names both plugins.

        ``adapt`` turns the ``register(name, value)`` collector into the callback the hook passes.
        """
        found: dict[str, tuple[V, str]] = {}
        for plugin_name, caller in self._per_plugin(hook):

            def register(name: str, value: V, plugin_name: str = plugin_name) -> None:
                if not isinstance(name, str) or not name:
                    raise ConfigurationError(f"plugin {plugin_name!r} registered a {what} without a name")
                if name in found:
                    raise ConfigurationError(
                        f"two plugins register the {what} {name!r}: {found[name][1]!r} and {plugin_name!r};"
                        " uninstall one, or limit plugins with SECTRA_LOAD_PLUGINS"
                    )
                found[name] = (value, plugin_name)

            caller(register=adapt(register))
        return {name: value for name, (value, _plugin) in found.items()}

    def _per_plugin(self, hook: str) -> Iterator[tuple[str, Any]]:
        """(plugin name, a caller of ``hook`` limited to that plugin), in registration order."""
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        plugins = [impl.plugin for impl in impls]
        for impl in impls:
            others = [p for p in plugins if p is not impl.plugin]
            # A subset caller keeps pluggy's machinery (tracing, wrappers) for each plugin's call.
            yield impl.plugin_name, self.pm.subset_hook_caller(hook, remove_plugins=others)


def _by_factory_name(register: Callable[[str, TransportFactory], None]) -> Callable[[TransportFactory], None]:
    """The ``register(factory)`` a transport plugin calls, checked, keyed by the factory's name."""

    def register_factory(factory: TransportFactory) -> None:
        if not isinstance(factory, TransportFactory) or factory.kind not in BUILTIN_TRANSPORTS:
            raise ConfigurationError(
                f"sectra_register_transports expects register(TransportFactory(name, 'sync' or 'async', create)),"
                f" not {type(factory).__name__}"
            )
        register(factory.name, factory)

    return register_factory


def _entry_points(allowed: set[str] | None) -> Iterable[tuple[str, Any]]:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        if allowed is not None and dist not in allowed:
            continue
        yield ep.name, ep


def make_plugins(*, entry_points: bool = True, extra: Iterable[object] = ()) -> Plugins:
    """Build a fresh plugin manager: built-ins, then ``sectra`` entry points, then ``extra`` plugins.

    Each client or test can have its own; nothing is built at import time.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(SectraSpecs)
    for name, module in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module), name=name)
    if entry_points:
        env = os.environ.get("SECTRA_LOAD_PLUGINS")
        allowed = None if env is None else {d.strip() for d in env.split(",") if d.strip()}
        for name, ep in _entry_points(allowed):
            try:
                plugin = ep.load()
            except ImportError as exc:
                # A plugin whose own optional dependency is missing: skipped, and said why.
                log.warning("skipping sectra plugin %s: %s", name, exc)
                continue
            pm.register(plugin, name=name)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    if os.environ.get("SECTRA_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: log.debug("%s", msg.rstrip()))
        pm.enable_tracing()
    return Plugins(pm)


_default: Plugins | None = None
_default_lock = threading.Lock()


def default_plugins() -> Plugins:
    """The process-wide plugin set clients use unless given their own (built on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = make_plugins()
        return _default
