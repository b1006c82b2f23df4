"""Perfect Corp style listings behind one canonical, paginated list of styles.

Upstream, styles live inside style groups, each listed page by page:
``GET task/style-group/<feature>?page_size=&starting_token=`` answers
``{"next_token", "groups": [{"id", "info": {"title"}}]}`` and
``GET task/style/<feature>?style_group_id=&page_size=&starting_token=`` answers
``{"next_token", "styles": [{"id", "info": {"title", "thumb"}}]}``.

The canonical list walks the groups in order and each group's styles in order. One canonical
page holds styles of one group (up to ``page_size``), so a page costs two upstream requests (the
group page, then the styles). The canonical ``starting_token`` is opaque: base64url JSON of the
group page's token, the group's index in it, and the style page's token.

A canonical ``Style.id`` is ``"<style_group_id>:<style_id>"`` because every styled task needs
both ids; ``group_id`` / ``group_title`` name the group too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.domain.errors import InvalidRequest
from app.providers.base import Style, StyleListing
from app.providers.perfectcorp_wire import Feature, unreadable

GROUPS_PAGE_SIZE = 20
"""The document's largest ``page_size`` (1–20)."""
MAX_PAGE_SIZE = 20

Fetch = Callable[[str, dict[str, str | int]], Awaitable[dict[str, Any]]]
"""``GET <path>?<query>`` on the API; answers the envelope's ``result`` object."""


@dataclass(frozen=True)
class Cursor:
    groups: str | None = None
    """``starting_token`` of the group page holding the current group (None: the first)."""
    index: int = 0
    """The current group's index in that page."""
    styles: str | None = None
    """``starting_token`` of the current group's next style page."""

    def encode(self) -> str:
        raw = json.dumps({"g": self.groups, "i": self.index, "s": self.styles}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str | None) -> Cursor:
        if not token:
            return cls()
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            groups, index, styles = raw["g"], raw["i"], raw["s"]
        except (ValueError, binascii.Error, KeyError, TypeError) as exc:
            raise _bad_token() from exc
        if not (
            isinstance(index, int)
            and index >= 0
            and all(v is None or isinstance(v, str) for v in (groups, styles))
        ):
            raise _bad_token()
        return cls(groups, index, styles)


def _bad_token() -> InvalidRequest:
    return InvalidRequest(
        "starting_token is not a token this listing gave", pointer="/starting_token"
    )


def _items(result: dict[str, Any], name: str) -> tuple[list[dict[str, Any]], str | None]:
    items = result.get(name)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise unreadable(f"no {name} list")
    token = result.get("next_token")
    return items, str(token) if token not in (None, "") else None


def _ident(item: dict[str, Any]) -> str:
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise unreadable("an id that is not a number")
    return str(value)


def _info(item: dict[str, Any], name: str) -> str | None:
    info = item.get("info")
    value = info.get(name) if isinstance(info, dict) else None
    value = value if value is not None else item.get(name)
    return value if isinstance(value, str) else None


async def style_page(
    fetch: Fetch, feature: Feature, page_size: int, starting_token: str | None
) -> StyleListing:
    cursor = Cursor.decode(starting_token)
    query: dict[str, str | int] = {"page_size": GROUPS_PAGE_SIZE}
    if cursor.groups:
        query["starting_token"] = cursor.groups
    groups, next_groups = _items(await fetch(f"/task/style-group/{feature.slug}", query), "groups")
    if cursor.index >= len(groups):
        return StyleListing(styles=[])
    group = groups[cursor.index]
    group_id, group_title = _ident(group), _info(group, "title")
    query = {"style_group_id": group_id, "page_size": max(1, min(page_size, MAX_PAGE_SIZE))}
    if cursor.styles:
        query["starting_token"] = cursor.styles
    styles, next_styles = _items(await fetch(f"/task/style/{feature.slug}", query), "styles")
    page = [
        Style(
            id=f"{group_id}:{_ident(style)}",
            title=_info(style, "title"),
            group_id=group_id,
            group_title=group_title,
            thumbnail_url=_info(style, "thumb"),
        )
        for style in styles
    ]
    following: Cursor | None = None
    if next_styles:
        following = Cursor(cursor.groups, cursor.index, next_styles)
    elif cursor.index + 1 < len(groups):
        following = Cursor(cursor.groups, cursor.index + 1)
    elif next_groups:
        following = Cursor(next_groups)
    return StyleListing(styles=page, next_token=following.encode() if following else None)
