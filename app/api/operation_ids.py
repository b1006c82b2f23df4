"""Stable operation ids: the endpoint's name, so generated clients read well.

Every router of the API and the application itself name their routes' operations with it:
the routers' routes are added to the application as they were built (``routes.install``), so
the id is theirs from the start.
"""

from __future__ import annotations

from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    return route.name
