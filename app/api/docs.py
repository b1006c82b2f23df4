"""The API's documentation, served by the gateway itself, and the polish on its OpenAPI document.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their scripts and styles from
``/docs/assets/``: the swagger-ui-dist and redoc standalone builds shipped in the
``fastapi-offline`` wheel. Nothing is fetched from a CDN, so the pages work on an air-gapped
host; Swagger UI's online validator badge and ReDoc's Google fonts are off for the same reason,
and a Content-Security-Policy keeps the browser from loading anything from elsewhere.

On top of what FastAPI derives from the routes, :func:`polish` gives the document:

- an example request (media by URL, and by uploaded ``file_id``) for every operation, built
  from its parameter model and checked against it, so examples cannot drift from the models;
- a schema for byte responses (artifacts, event streams), which FastAPI leaves empty;
- the error schema under ``application/problem+json``, the type errors are sent with (FastAPI
  files a response model under ``application/json``);
- the problem+json ``default`` response on every operation that does not declare one, so
  even the probes document the error shape any route can answer with;
- ``format: binary`` on uploaded files besides 3.1's ``contentMediaType``, for generators;
- readable names for schemas FastAPI qualifies with their module path (two models of one name).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from app.api.problems import PROBLEM_JSON, Problem
from app.domain.media import MediaKind
from app.domain.operations import PARAMS, ROUTES, Operation, Params

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
"""``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``, ``favicon.png``."""

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    **swagger_ui_default_parameters,
    "validatorUrl": None,  # else Swagger UI asks validator.swagger.io for a badge
    "persistAuthorization": True,
    "displayRequestDuration": True,
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # the page's inline initialiser
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search index
        "connect-src 'self'",
        "frame-ancestors 'self'",
    )
)
"""Sent with both pages: the browser loads nothing from elsewhere, even where a bundle tries
(ReDoc's sidebar shows a logo from cdn.redoc.ly; blocked, it is simply left out)."""

JSONObject = dict[str, Any]

# -- pages ------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the assets, add ``/docs`` and ``/redoc``, and polish ``app.openapi()``.

    The app must be created with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load
    their assets from a CDN).
    """
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs_assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(REDOC_URL, redoc, methods=["GET"], include_in_schema=False)
    app.openapi = _polished(app, app.openapi)  # type: ignore[method-assign]


def _polished(app: FastAPI, generate: Callable[[], JSONObject]) -> Callable[[], JSONObject]:
    def openapi() -> JSONObject:
        if app.openapi_schema is None:
            app.openapi_schema = polish(generate())
        return app.openapi_schema

    return openapi


# -- document ---------------------------------------------------------------------------


def polish(spec: JSONObject) -> JSONObject:
    """The document FastAPI generated, with the additions the module docstring lists."""
    paths: dict[str, dict[str, JSONObject]] = spec.get("paths", {})
    for operation, params in PARAMS.items():
        post = paths.get(ROUTES[operation], {}).get("post")
        body = post and post.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            examples = request_examples(operation, params)
            if examples:
                body["examples"] = examples
    for item in paths.values():
        for operation_object in item.values():
            responses: dict[str, JSONObject] = operation_object.setdefault("responses", {})
            for status, response in responses.items():
                if status.startswith("2"):
                    _type_byte_content(response)
                else:
                    _problem_content(response)
            if "default" not in responses:
                responses["default"] = _default_problem()
    _mark_binary(spec.get("components", {}).get("schemas", {}))
    return _readable_schema_names(spec)


def _type_byte_content(response: JSONObject) -> None:
    """Give non-JSON 2xx bodies (images, video, audio, event streams) a string schema."""
    for media_type, content in response.get("content", {}).items():
        if "schema" in content or media_type.endswith("json"):
            continue
        if media_type.startswith("text/"):
            content["schema"] = {"type": "string"}
        else:
            content["schema"] = {"type": "string", "format": "binary"}


def _readable_schema_names(spec: JSONObject) -> JSONObject:
    """``app__api__routes__admin__ProviderList`` → ``AdminProviderList``.

    FastAPI names a schema by its module path when two models share a class name; generated
    clients then turn both into one class name and drop one of them.
    """
    schemas: JSONObject = spec.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for name in schemas:
        if "__" in name:
            *modules, model = name.split("__")
            renames[name] = modules[-1].title().replace("_", "") + model
    if not renames or len({renames.get(n, n) for n in schemas}) != len(schemas):
        return spec  # a readable name would collide: keep FastAPI's
    for old, new in renames.items():
        schemas[old]["title"] = new  # generators name classes by title
    spec["components"]["schemas"] = {renames.get(n, n): v for n, v in schemas.items()}
    refs = {
        f"#/components/schemas/{old}": f"#/components/schemas/{new}" for old, new in renames.items()
    }

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: refs.get(v, v) if k == "$ref" else rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    rewritten: JSONObject = rewrite(spec)
    return rewritten


def _mark_binary(node: Any) -> None:
    """Uploads: FastAPI writes 3.1's ``contentMediaType``; add the ``format: binary`` most
    generators still read (openapi-python-client otherwise types the file as ``str``)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "contentMediaType" in node:
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_binary(value)


def _problem_content(response: JSONObject) -> None:
    """Errors are sent as problem+json: FastAPI puts the model under application/json."""
    content: dict[str, JSONObject] = response.get("content", {})
    if PROBLEM_JSON in content and "application/json" in content:
        content[PROBLEM_JSON] = content.pop("application/json")


def _default_problem() -> JSONObject:
    schema = {"$ref": f"#/components/schemas/{Problem.__name__}"}
    return {
        "description": "Any other error (e.g. 500 internal_error), as problem+json",
        "content": {PROBLEM_JSON: {"schema": schema}},
    }


# -- examples ---------------------------------------------------------------------------

TEXT_EXAMPLES: dict[str, str] = {
    "prompt": "a red fox in fresh snow at golden hour, 35 mm photograph",
    "text": "Welcome to mediagate: one API in front of every media provider.",
    "voice": "emma",
}
"""Values of text parameters by name; also shown when the parameter is optional."""

PROMPTS: dict[Operation, str] = {
    Operation.image_replace_background: "a sunlit beach at low tide",
    Operation.image_remove_object: "the lamp post on the left",
    Operation.image_outpaint: "more of the meadow and the evening sky",
    Operation.image_replace_identity: "a woman in her thirties with short red hair",
    Operation.image_lock_identity: "portrait in a bright studio, soft light, linen shirt",
    Operation.image_instamodel: "fashion shoot on a city street, autumn coat",
    Operation.video_generate: "waves rolling onto a beach at sunset, slow drone shot",
    Operation.audio_generate: "calm lo-fi piano over soft rain",
}
"""The prompt where the generic one would read oddly."""

_EXTENSIONS = {MediaKind.image: "jpg", MediaKind.video: "mp4", MediaKind.audio: "wav"}
_EXAMPLE_FILE_ID = "file_0190f3a2c4e1a1b2c3d4e5f6a7b8c9d0"


def request_examples(operation: Operation, params: type[Params]) -> dict[str, JSONObject]:
    """OpenAPI ``examples`` for an operation's request body, each valid for ``params``."""
    text = {**TEXT_EXAMPLES, "prompt": PROMPTS.get(operation, TEXT_EXAMPLES["prompt"])}
    by_url = _example(params, text, lambda name, kind: {"url": _example_url(name, kind)})
    by_file = _example(params, text, lambda name, kind: {"file_id": _EXAMPLE_FILE_ID})
    label = operation.value
    candidates: dict[str, JSONObject]
    if by_file == by_url:  # no media inputs
        candidates = {"request": {"summary": label, "value": by_url}}
    else:
        candidates = {
            "media_by_url": {"summary": f"{label}, media by URL", "value": by_url},
            "media_by_file_id": {
                "summary": f"{label}, media uploaded with POST /v1/files",
                "value": by_file,
            },
        }
    return {name: ex for name, ex in candidates.items() if _valid(params, ex["value"])}


def _example_url(name: str, kind: MediaKind) -> str:
    return f"https://example.com/media/{name}.{_EXTENSIONS[kind]}"


def _example(
    params: type[Params], text: dict[str, str], media: Callable[[str, MediaKind], JSONObject]
) -> JSONObject:
    value: JSONObject = {}
    for name, field in params.model_fields.items():
        kind = params.media_fields.get(name)
        if field.is_required() and kind is not None:
            value[name] = media(name, kind)
        elif name in text:
            value[name] = text[name]
        elif field.is_required():
            value[name] = _scalar(field)
    return value


def _scalar(field: FieldInfo) -> Any:
    """A value for a required parameter with no named example: its first example or choice."""
    if field.examples:
        return field.examples[0]
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)[0]
    return None


def _valid(params: type[Params], value: JSONObject) -> bool:
    try:
        params.model_validate(value)
    except ValidationError:
        return False
    return True
