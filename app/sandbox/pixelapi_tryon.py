"""PixelAPI emulator, the virtual try-on submission: ``POST /v1/virtual-tryon`` (JSON).

``person_image`` and ``garment_image`` are base64 strings with no ``data:`` prefix, and
``category`` is one of ``upperbody``, ``lowerbody``, ``dress``. The result is a PNG at the
person picture's size, returned base64 in the poll's ``result_image_b64``.

Errors follow the section's structure, ``{"detail": {"error", "message", "guidance",
"received_size"?}}``, in this order: ``invalid_category`` (422: missing or not one of the
three), ``invalid_image`` (400: a picture missing, not base64, or not a JPEG/PNG/WebP),
``image_too_small`` (422: the person picture under 100 px on a side), ``wrong_aspect_ratio``
(422: the person picture wider than tall). A body that is not a JSON object is FastAPI's own
422, before the endpoint runs. A decoded picture over 10 MB is the API-wide 413. The two codes
that depend on the model's state are the faults': ``body_segmentation_failed`` (422, the
``no_face`` fault) and ``gpu_out_of_memory`` (503, ``http_500``); see :func:`fault_detail`.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from app.sandbox import images
from app.sandbox.pixelapi_jobs import Work
from app.sandbox.pixelapi_wire import ACCEPTED_FORMATS, MAX_UPLOAD_BYTES, Refusal, json_object

CATEGORIES = ("upperbody", "lowerbody", "dress")
MIN_PERSON_SIDE = 100


def _error(error: str, message: str, guidance: str, **extra: str) -> dict[str, str]:
    return {"error": error, "message": message, "guidance": guidance, **extra}


def fault_detail(error: str) -> dict[str, str]:
    """The structured detail of ``body_segmentation_failed`` or ``gpu_out_of_memory``."""
    if error == "body_segmentation_failed":
        return _error(
            error,
            "Could not identify the clothing region on the person.",
            "Use a clearer front-facing torso photo.",
        )
    return _error(
        "gpu_out_of_memory",
        "GPU busy: out of memory.",
        "Retry in a few seconds. Use smaller images (max 1024x1024).",
    )


def _picture(body: dict[str, object], name: str) -> tuple[int, int]:
    value = body.get(name)
    invalid = Refusal(
        400,
        _error(
            "invalid_image",
            f"{name} is missing, corrupt, or not a valid JPG/PNG/WebP image.",
            "Check your base64 encoding (a plain base64 string, no data: prefix).",
        ),
    )
    if not isinstance(value, str) or not value:
        raise invalid
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refusal(413, "File too large. Maximum size is 10MB.")
    info = images.inspect(data)
    if info is None or info.format not in ACCEPTED_FORMATS:
        raise invalid
    return info.width, info.height


async def parse_try_on(request: Request) -> Work:
    body = await json_object(request)
    if body.get("category") not in CATEGORIES:
        raise Refusal(
            422,
            _error(
                "invalid_category",
                f"category must be one of: {', '.join(CATEGORIES)}",
                "Use upperbody for tops, lowerbody for pants and skirts, dress for full-body.",
            ),
        )
    width, height = _picture(body, "person_image")
    _picture(body, "garment_image")
    received = f"{width}x{height}px"
    if min(width, height) < MIN_PERSON_SIDE:
        raise Refusal(
            422,
            _error(
                "image_too_small",
                f"Person image is too small (minimum {MIN_PERSON_SIDE}px).",
                "Use a photo that is at least 300x400px, portrait orientation.",
                received_size=received,
            ),
        )
    if width > height:
        raise Refusal(
            422,
            _error(
                "wrong_aspect_ratio",
                "Person image is wider than tall (landscape).",
                "Use a portrait photo (taller than wide).",
                received_size=received,
            ),
        )
    return Work(width, height)
