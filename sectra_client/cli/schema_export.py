"""``sectra schema export DIR``: JSON Schemas of the IA-API wire, generated from the SDK's msgspec
Structs, for apps written in other languages (see docs/schemas.md)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

import msgspec

from sectra_core.schemas.images import ImageInfo
from sectra_core.schemas.invocations import ImageNotification, Invocation
from sectra_core.schemas.registration import Registration
from sectra_core.schemas.results import Result, ResultResponse

from ._common import EXIT_OK

__all__ = ["SCHEMAS", "schema_documents", "export_schemas", "add_commands"]

#: File stem -> the wire type it describes (the newest wire, v5.0 field names: camelCase).
SCHEMAS: dict[str, Any] = {
    "registration": Registration,
    "invocation": Invocation,
    "image-notification": ImageNotification,
    "result": Result,
    "result-response": ResultResponse,
    "image-info": ImageInfo,
}


def schema_documents() -> dict[str, dict[str, Any]]:
    """Each published schema by file stem, as a JSON Schema (draft 2020-12) document."""
    out: dict[str, dict[str, Any]] = {}
    for stem, typ in SCHEMAS.items():
        doc = msgspec.json.schema(typ)
        doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{stem}.schema.json",
               "title": f"Sectra IA-API {stem} (wire v5.0)", **doc}
        out[stem] = doc
    return out


def export_schemas(directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``<stem>.schema.json`` for each published schema into ``directory`` (created if
    missing); each file lands atomically (written beside, then renamed). Returns the paths."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stem, doc in schema_documents().items():
        path = target / f"{stem}.schema.json"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=target)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    return written


def cmd_schema_export(args: Any, out: TextIO) -> int:
    """``sectra schema export DIR``."""
    for path in export_schemas(args.directory):
        out.write(f"{path}\n")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``schema export`` to the ``sectra`` parser's ``sub``."""
    p = sub.add_parser("schema", help="JSON Schemas of the IA-API wire (for apps in other languages)")
    group = p.add_subparsers(dest="schema_command", required=True)
    e = group.add_parser("export", help="write registration, invocation, result and image-info schemas to DIR")
    e.add_argument("directory", metavar="DIR", help="folder to write <name>.schema.json files into (created)")
    e.set_defaults(func=cmd_schema_export)
