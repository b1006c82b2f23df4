"""Client JSON the gateway keeps as given (``metadata``), and strings and numbers it stores.

Python's JSON parser accepts what JSON does not (``Infinity``, ``NaN``) and strings no UTF-8
encoder can write (lone surrogates, ``"\\ud800"``): both are refused here, with a JSON pointer
to the value, before anything is stored. ``metadata`` is also bounded in size, depth and keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping

from app.domain.errors import ErrorCode, InvalidRequest

METADATA_MAX_BYTES = 16 * 1024
"""``metadata`` as compact UTF-8 JSON."""
METADATA_MAX_DEPTH = 5
"""Levels of objects and arrays, the top-level object counting as one."""
METADATA_MAX_KEYS = 64
"""Keys of all objects in ``metadata`` together."""
METADATA_MAX_KEY_CHARS = 256

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _walk(value: object, pointer: str, depth: int) -> Iterator[tuple[object, str, int]]:
    """Every value with its pointer and depth (containers before their items)."""
    yield value, pointer, depth
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key, pointer, depth  # a key is checked as a string of its container
            yield from _walk(item, f"{pointer}/{_escape(str(key))}", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{pointer}/{index}", depth + 1)


def _refuse(detail: str, pointer: str) -> InvalidRequest:
    """``pointer`` "" is the body as a whole (a key of its top-level object, say)."""
    return InvalidRequest(detail, code=ErrorCode.invalid_parameter, pointer=pointer)


def check_storable(value: object, pointer: str) -> None:
    """Refuse non-finite numbers and strings holding lone surrogates anywhere in ``value``.

    Nearly every value passes: it is written as UTF-8 JSON first, which refuses both in C.
    Only a value that cannot be written so is walked, to find what is wrong and where."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        pass
    else:
        return
    for item, where, _ in _walk(value, pointer, 1):
        if isinstance(item, float) and not math.isfinite(item):
            raise _refuse("numbers must be finite (no Infinity or NaN)", where)
        if isinstance(item, str) and _SURROGATE.search(item):
            raise _refuse("strings must be valid Unicode (no lone surrogates)", where)


def check_metadata(metadata: Mapping[str, object], pointer: str = "/metadata") -> None:
    """``metadata`` the gateway can store and give back unchanged, within its bounds."""
    if not metadata:  # most jobs carry none
        return
    keys = 0
    for item, where, depth in _walk(metadata, pointer, 1):
        if isinstance(item, Mapping | list | tuple) and depth > METADATA_MAX_DEPTH:
            raise _refuse(f"metadata may nest at most {METADATA_MAX_DEPTH} levels", where)
        if isinstance(item, Mapping):
            keys += len(item)
            if keys > METADATA_MAX_KEYS:
                raise _refuse(f"metadata may have at most {METADATA_MAX_KEYS} keys", where)
            for key in item:
                if len(str(key)) > METADATA_MAX_KEY_CHARS:
                    raise _refuse(
                        f"metadata keys may be at most {METADATA_MAX_KEY_CHARS} characters",
                        f"{where}/{_escape(str(key))[:64]}",
                    )
    check_storable(metadata, pointer)
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        raise _refuse(
            f"metadata may be at most {METADATA_MAX_BYTES} bytes as JSON (it has {size})", pointer
        )
