"""The base of the domain's enumerations that pydantic models carry.

A :class:`TextEnum` member is a ``str`` whose text is its value, and pydantic writes it to JSON
as that text. Validation, the JSON schema and ``model_dump()`` (the member itself) are an
enum's, as before; only how it is written changes, not what: pydantic's enum serializer reads
each member's ``.value`` to write it, two Python calls on Python 3.11 (``enum.property``), some
1,800 instructions a member and a synchronous job's JSON carries about twenty. Its ``str``
serializer writes the same text from C.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema


class TextEnum(StrEnum):
    """A ``StrEnum`` that pydantic serializes as its text (see the module docstring)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        own = handler(source)  # the enum's schema: its validation and JSON schema
        return {**own, "serialization": core_schema.simple_ser_schema("str")}
