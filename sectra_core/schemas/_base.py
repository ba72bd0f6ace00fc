"""The base of every wire Struct, and the one place where msgspec errors become SDK errors."""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Optional, TypeVar

import msgspec

from ..errors import DecodeError

__all__ = ["WireStruct", "Nullable", "fill_nulls", "decoder", "decode", "encode", "unknown_fields"]

T = TypeVar("T")

if TYPE_CHECKING:
    #: A field that reads ``null`` as "absent": ``Nullable[list[Polygon]] = []``. To type checkers it
    #: is the plain type (the value is never None after decoding); to msgspec it is ``T | None``,
    #: and the Struct's ``__post_init__`` calls :func:`fill_nulls` to put the default back.
    #: Sectra's own pydantic clients send ``null`` for every unset optional field (spec §11.1).
    Nullable = Annotated[T, "null reads as the default"]
else:
    class Nullable:
        """``Nullable[X]`` is ``Optional[X]`` for msgspec (see the TYPE_CHECKING branch)."""

        def __class_getitem__(cls, item: Any) -> Any:
            return Optional[item]


class WireStruct(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Base of all IA-API messages: camelCase on the wire, keyword-only, defaults left out on output.

    Subclasses list fields that must never appear in a repr (tokens, PHI) in ``__redact__``.

    Only ``None`` defaults may be left out on output: a Struct with any other default (``0``,
    ``""``, ``"NotSet"``, ``[]`` a receiver may require) sets ``omit_defaults=False`` so every such
    field is always sent. ``tests/core/test_schemas.py`` checks this rule for every Struct.
    """

    __redact__: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in self.__redact__ and value is not None:
                parts.append(f"{name}=<redacted>")
            else:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    __str__ = __repr__

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """The fields for rich's pretty printer, redacted as in ``repr``.

        msgspec gives every Struct a ``__rich_repr__`` of all fields, which rich prefers to
        ``__repr__``: without this, ``rich.print(info)`` showed tokens and PHI.
        """
        return [
            (name, "<redacted>" if name in self.__redact__ and value is not None else value)
            for name, value in ((n, getattr(self, n)) for n in self.__struct_fields__)
        ]


@functools.cache
def _null_defaults(cls: type[msgspec.Struct]) -> tuple[tuple[str, Any, Any], ...]:
    found = []
    for f in msgspec.structs.fields(cls):
        if f.default is not None and f.default is not msgspec.NODEFAULT:
            found.append((f.name, f.default, None))
        elif f.default_factory is not msgspec.NODEFAULT:
            found.append((f.name, None, f.default_factory))
    return tuple(found)


def fill_nulls(obj: msgspec.Struct) -> None:
    """Replace ``None`` in every field that has a non-None default by that default (a fresh copy).

    Called from ``__post_init__`` of Structs with :data:`Nullable` fields, so code never sees None.
    """
    for name, default, factory in _null_defaults(type(obj)):
        if getattr(obj, name) is None:
            value = factory() if factory is not None else (default.copy() if isinstance(default, (list, dict)) else default)
            setattr(obj, name, value)


_encoder = msgspec.json.Encoder()


def decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """A lenient JSON decoder for ``type_``: unknown fields are ignored (schema evolution, spec §9.2)."""
    return msgspec.json.Decoder(type_)


#: Bodies at least this large are decoded with the cyclic GC paused (see :func:`_gc_paused`).
LARGE_BODY = 1 << 20
_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_restore = False


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # A 100 MB result decodes into millions of objects; the cyclic GC would walk them again and
    # again while they are being built (about 40 % of the decode time here). Decoded messages hold
    # no reference cycles, so pausing it is safe (msgpack and msgspec recommend the same). The
    # counter keeps concurrent decodes in several threads from re-enabling it early.
    global _gc_pauses, _gc_restore
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_restore = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_restore:
                gc.enable()


def decode(dec: msgspec.json.Decoder[T], body: bytes | str, what: str) -> T:
    """Decode ``body`` with ``dec``; any failure becomes :class:`DecodeError` naming ``what`` and the JSON path."""
    try:
        if len(body) >= LARGE_BODY:
            with _gc_paused():
                return dec.decode(body)
        return dec.decode(body)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"{what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DecodeError(f"{what}: malformed JSON ({exc})") from None
    except RecursionError:
        # msgspec recurses per nesting level; a hostile body can nest arrays 100,000 deep.
        raise DecodeError(f"{what}: JSON nested too deeply") from None
    except (TypeError, ValueError) as exc:
        # A Struct's __post_init__ refusing a value the schema allowed.
        raise DecodeError(f"{what}: {exc}") from None


def encode(value: Any) -> bytes:
    """Encode a Struct (or plain value) as canonical JSON bytes."""
    return _encoder.encode(value)


@functools.cache
def _wire_names(cls: type[msgspec.Struct]) -> dict[str, str]:
    # msgspec.structs.fields() re-reads the class annotations on every call; this runs per request.
    return dict(zip(cls.__struct_encode_fields__, cls.__struct_fields__))


def unknown_fields(value: Any, raw: Any, path: str = "$") -> list[str]:
    """JSON paths in ``raw`` (the plain decoded JSON) that ``value`` (the typed decode) has no field for.

    The mock uses this to be strict about what clients send (principle 10) while the client
    itself stays lenient.
    """
    found: list[str] = []
    if isinstance(value, msgspec.Struct) and isinstance(raw, dict):
        by_wire = _wire_names(type(value))
        tag_field = type(value).__struct_config__.tag_field
        for key, sub in raw.items():
            if key == tag_field:
                continue
            if key not in by_wire:
                found.append(f"{path}.{key}")
                continue
            found.extend(unknown_fields(getattr(value, by_wire[key]), sub, f"{path}.{key}"))
    elif isinstance(value, list) and isinstance(raw, list):
        for i, (v, r) in enumerate(zip(value, raw)):
            found.extend(unknown_fields(v, r, f"{path}[{i}]"))
    elif isinstance(value, list) and isinstance(raw, dict) and len(value) == 1:
        # A single object normalised into a one-item list (primitive ``content``, spec §5.6).
        found.extend(unknown_fields(value[0], raw, path))
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, sub in raw.items():
            if key in value:
                found.extend(unknown_fields(value[key], sub, f"{path}.{key}"))
    return found
