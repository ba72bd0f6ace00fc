"""Each client module binds its transport; no transport imports a client (issue #25).

``sectra_transports.trio`` and ``sectra_transports.urllib3`` are the small binding modules (a
client and its transport); the transports themselves (``_trio_transport``, ``_urllib3_transport``)
must reach no client module through any import, ``TYPE_CHECKING`` and function-level ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sectra_transports"
CLIENTS = {"_async", "_sync", "_remote_slide", "_remote_slide_sync", "trio", "urllib3"}


def _imports(module: str) -> set[str]:
    """The sibling modules of ``sectra_transports`` that ``module`` imports, anywhere in it."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.update([node.module] if node.module else [alias.name for alias in node.names])
            elif node.module and node.module.startswith("sectra_transports."):
                found.add(node.module.split(".")[1])
            elif node.module == "sectra_transports":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sectra_transports."))
    return {name for name in found if (PACKAGE / f"{name}.py").exists()}


@pytest.mark.parametrize("transport", ["_trio_transport", "_urllib3_transport"])
def test_no_transport_reaches_a_client(transport: str) -> None:
    reached, todo = set(), [transport]
    while todo:
        for name in _imports(todo.pop()) - reached:
            reached.add(name)
            todo.append(name)
    assert not reached & CLIENTS, f"{transport} imports {sorted(reached & CLIENTS)}"


def test_the_binding_modules_export_client_and_transport() -> None:
    from sectra_transports import trio, urllib3
    from sectra_transports._trio_transport import TrioTransport
    from sectra_transports._urllib3_transport import Urllib3Transport

    assert trio.TrioTransport is TrioTransport and trio.AsyncSectraClient.__module__ == "sectra_transports._async"
    assert urllib3.Urllib3Transport is Urllib3Transport and urllib3.SectraClient.__module__ == "sectra_transports._sync"
