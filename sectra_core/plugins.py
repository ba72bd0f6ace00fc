"""Building plugin managers: built-ins first, then entry points, then a typed facade over ``pm.hook``.

Environment:

* ``SECTRA_LOAD_PLUGINS``: comma-separated distribution names; only their ``sectra`` entry points
  load (built-in adapters always load). Empty string: no entry points at all.
* ``SECTRA_TRACE_PLUGINS``: any non-empty value logs every hook call at DEBUG level on the
  ``sectra_core.plugins`` logger.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import pluggy

from .adapters import VersionAdapter
from .hookspecs import PROJECT, SectraSpecs
from .transport import TransportOptions

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "Plugins", "make_plugins", "default_plugins"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT

#: Built-in plugins, by registration name and module. The same names are declared as entry points
#: in pyproject.toml, so an installed SDK and a source checkout load the same set exactly once.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("sectra-adapter-v3_4", "sectra_core.adapters.v3_4"),
    ("sectra-adapter-v5_0", "sectra_core.adapters.v5_0"),
)


class Plugins:
    """A typed facade over one pluggy ``PluginManager``.

    Call sites use :meth:`adapters` and :meth:`make_transport` instead of ``pm.hook`` so they are
    type-checked.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._adapters: dict[str, VersionAdapter] | None = None
        self._lock = threading.Lock()

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register one more plugin (a module or object with hook implementations)."""
        if name is None or not self.pm.has_plugin(name):
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        self._adapters = None

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
            from .errors import ConfigurationError

            raise ConfigurationError(
                f"no API-version adapter {name!r}; known: {', '.join(sorted(adapters))}"
            ) from None

    def make_transport(self, kind: str, options: TransportOptions) -> Any:
        """A transport of ``kind`` (``"sync"`` or ``"trio"``) from the first plugin that offers one."""
        return self.pm.hook.sectra_make_transport(kind=kind, options=options)

    def make_job_runner(self, mode: str) -> Any:
        """A background-job runner for an app served in ``mode`` (``"trio"`` or ``"asyncio"``)."""
        return self.pm.hook.sectra_make_job_runner(mode=mode)


def _entry_points(allowed: set[str] | None) -> Iterable[tuple[str, Any]]:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        if allowed is not None and dist not in allowed:
            continue
        yield ep.name, ep


def make_plugins(*, entry_points: bool = True, extra: Iterable[Any] = ()) -> Plugins:
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
            if pm.has_plugin(name) or pm.is_blocked(name):
                continue
            try:
                plugin = ep.load()
            except ImportError as exc:
                # An optional extra that is not installed (e.g. the trio transport without trio).
                log.debug("skipping plugin %s: %s", name, exc)
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
