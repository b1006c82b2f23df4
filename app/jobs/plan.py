"""Which providers a request goes to, in order: the plan a job is created with.

The client's choice (``provider``; alone, it pins the job), then its ``fallback`` list; with
no choice, every configured provider that can serve the request, in the routing order. A
provider *serves* a request when it can honour every parameter given and is given every
parameter it requires (``Binding.serves``). The first provider must serve it, else a 422
names what is wrong: ``unsupported_parameter`` (and the providers that can honour it) or
``missing_parameter`` (and the providers that do not need it). Fallback candidates that
cannot serve the request are left out of the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from app.domain.errors import ErrorCode, InvalidRequest, MissingParameter, UnsupportedParameter
from app.domain.operations import Operation, Params
from app.providers.base import Binding


def plan_providers(
    bindings: Mapping[str, Binding],
    operation: Operation,
    params: Params,
    provider: str | None,
    fallback: list[str] | Literal[False] | None,
) -> list[str]:
    """The providers to try, in order (``bindings``: the operation's, in routing order)."""
    if not bindings:
        raise InvalidRequest(
            f"no configured provider serves {operation.value}",
            code=ErrorCode.unsupported_operation,
            pointer="/path",  # the operation's route
        )
    for name in [provider, *(fallback or [])]:
        if name is not None and name not in bindings:
            raise InvalidRequest(
                f"provider {name!r} does not serve {operation.value}; "
                f"choose one of {', '.join(bindings)}",
                code=ErrorCode.unsupported_operation,
                pointer="/provider" if name == provider else "/fallback",
            )
    able = [n for n, b in bindings.items() if b.serves(params)]
    if provider is not None:
        first = provider
        rest = list(fallback or [])
    else:
        first = able[0] if able else next(iter(bindings))
        rest = able[1:] if fallback is None else list(fallback or [])
    if first not in able:
        refuse_unless_served(bindings, first, params)
    return [first, *(n for n in dict.fromkeys(rest) if n != first and n in able)]


def refuse_unless_served(bindings: Mapping[str, Binding], name: str, params: Params) -> None:
    """422 when provider ``name`` cannot honour a parameter given, or lacks one it requires;
    the problem names the providers that could serve the request."""
    binding = bindings[name]
    refused = binding.refuses(params)
    if refused is not None:
        able = [n for n, b in bindings.items() if b.refuses(params) is None]
        raise UnsupportedParameter(refused, name, able)
    missing = binding.lacks(params)
    if missing is not None:
        not_needing = [
            n for n, b in bindings.items() if missing not in b.required and b.serves(params)
        ]
        raise MissingParameter(missing, name, not_needing)
