"""Perfect Corp emulator, the work: features, the style catalog, uploaded files, tasks, results.

A task is judged when it is submitted (its inputs read as the engine would read them) and
reveals its outcome after ``timing.job_s``: ``running`` until then, ``success`` or ``error``
with a code of the document's table after. Module constants are read at call time, so tests
may shorten them: ``POLLING_INTERVAL_MS`` (the answer's ``polling_interval``),
``DROP_AFTER_S`` (a task not polled that long is lost, 10 s upstream) and ``RESULT_TTL_S``
(result URLs are valid 2 h).

Readings of the engine (``app/sandbox/perfectcorp.py`` records those of the wire):

- Inputs follow the document's "Supported Formats & Dimensions" table: a file type the task
  does not take is refused at ``file/<feature>`` (the hairstyle generator takes JPEG only;
  makeup transfer JPEG, PNG or HEIC; the others JPEG or PNG). An input never uploaded is
  ``error_download_image`` (``error_download_mask`` for a mask); one of 10 MB or more
  ``exceed_max_filesize``; one that is not a picture ``error_decode_*``; one whose long side
  passes the feature's limit (1024 for hair, aging, makeup; 4096 otherwise),
  or a mask not the size of its picture, ``invalid_parameter``. A one-colour picture has no
  face: ``error_no_face`` for the face features (hair, aging, makeup transfer).
- Outputs are the input's size (``enhance``: × ``scale``, at most 4096 px a side; text to image:
  1024×1024), in the asked ``output_ext``; ``sod`` keeps an alpha channel.
- Aging answers six photos in ascending ``res_age``, the uploaded one among them
  (``custom_info.age_idx``), as the document describes.
"""

from __future__ import annotations

import base64
import secrets
import uuid
import zlib
from dataclasses import dataclass, field

from app.sandbox import images
from app.sandbox.control import Fault

POLLING_INTERVAL_MS = 1000
DROP_AFTER_S = 10.0
RESULT_TTL_S = 2 * 3600.0
FILE_TTL_S = 24 * 3600.0
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_OUTPUT_SIDE = 4096
GENERATED_SIDE = 1024

UPLOAD_TYPES = frozenset({"image/jpg", "image/jpeg", "image/png"})
AGES = (10, 20, 30, 40, 50, 60)
ESTIMATED_AGE = 32
INPUT_AGE_INDEX = 2
"""Where the uploaded photo sits in an aging series (``res_age`` 30, estimated age 32)."""


@dataclass(frozen=True)
class Spec:
    """One feature as the engine runs it."""

    file_sets: tuple[str, ...] = ("src_ids",)
    styled: bool = False
    face: bool = False
    max_side: int = 4096
    output_exts: frozenset[str] = frozenset({"jpg"})
    default_ext: str = "jpg"
    upload_types: frozenset[str] = UPLOAD_TYPES


_HAIR = Spec(styled=True, face=True, max_side=1024)
JPEG_ONLY = frozenset({"image/jpg", "image/jpeg"})
_JPG_WEBP = frozenset({"jpg", "webp"})

FEATURES: dict[str, Spec] = {
    "hair-style": Spec(styled=True, face=True, max_side=1024, upload_types=JPEG_ONLY),
    "wig": _HAIR,
    "hair-ext": _HAIR,
    "hair-bang": _HAIR,
    "hair-vol": _HAIR,
    "aging": Spec(face=True, max_side=1024),
    "mu-trans-rec": Spec(
        ("src_ids", "ref_ids"),
        face=True,
        max_side=1024,
        upload_types=UPLOAD_TYPES | {"image/heic"},
    ),
    "obj-removal": Spec(("src_ids", "mask_ids"), output_exts=_JPG_WEBP),
    "colorize": Spec(output_exts=_JPG_WEBP),
    "sod": Spec(output_exts=frozenset({"png", "webp"}), default_ext="png"),
    "enhance": Spec(output_exts=_JPG_WEBP),
    "text-to-image": Spec((), styled=True, max_side=GENERATED_SIDE),
}

_FORMATS = {"jpg": "jpeg", "png": "png", "webp": "webp"}


# the style catalog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    id: int
    title: str


@dataclass(frozen=True)
class Group:
    id: int
    title: str
    styles: tuple[Item, ...]


_CATALOG_TITLES: dict[str, list[tuple[str, list[str]]]] = {
    "hair-style": [
        ("Women's", ["Long Wave", "Pixie Cut", "Layered Bob", "Beach Waves"]),
        ("Men's", ["Crew Cut", "Undercut", "Quiff"]),
        ("Short", ["Buzz", "Bob", "Crop"]),
        ("Long", ["Straight", "Curtain Layers", "Mermaid Waves", "Boho Braid", "Sleek"]),
        ("Curly", ["Coils", "Ringlets"]),
        ("Color", ["Honey Blonde", "Copper", "Ash Brown"]),
    ],
    "wig": [
        ("Long Wigs", ["Silky Straight", "Body Wave"]),
        ("Bob Wigs", ["Classic Bob", "Lob"]),
        ("Curly Wigs", ["Afro", "Kinky Curly", "Deep Wave"]),
    ],
    "hair-ext": [("Extra Long", ["Waist Length", "Hip Length"]), ("Long", ["Chest", "Mid-back"])],
    "hair-bang": [
        ("Curtain", ["Curtain Bangs", "Wispy Curtain"]),
        ("Blunt", ["Blunt Bangs"]),
        ("Side", ["Side Swept", "Long Side"]),
    ],
    "hair-vol": [("Natural", ["Light Volume", "Medium Volume"]), ("High", ["High Volume"])],
    "text-to-image": [
        ("Illustration", ["Watercolor", "Line Art", "Flat"]),
        ("Photography", ["Studio", "Film"]),
        ("3D", ["Clay", "Render"]),
        ("Anime", ["Cel", "Chibi"]),
    ],
}


def _catalog() -> dict[str, tuple[Group, ...]]:
    catalog: dict[str, tuple[Group, ...]] = {}
    for f, (feature, groups) in enumerate(_CATALOG_TITLES.items()):
        catalog[feature] = tuple(
            Group(
                18213963761051864 + 1000 * f + g,
                title,
                tuple(
                    Item(22205685004925400 + 100_000 * f + 100 * g + s, name)
                    for s, name in enumerate(styles)
                ),
            )
            for g, (title, styles) in enumerate(groups)
        )
    return catalog


CATALOG = _catalog()
"""Style groups and styles of every styled feature (ids in the document's 17-digit form)."""


def find_style(feature: str, group_id: object, style_id: object) -> bool:
    for group in CATALOG.get(feature, ()):
        if group.id == group_id:
            return any(style.id == style_id for style in group.styles)
    return False


# files ------------------------------------------------------------------------------------------


@dataclass
class StoredFile:
    id: str
    content_type: str
    file_name: str
    upload_token: str
    created_s: float
    data: bytes | None = None


def new_file(content_type: str, file_name: str, now: float) -> StoredFile:
    return StoredFile(
        id=secrets.token_urlsafe(30),
        content_type=content_type,
        file_name=file_name,
        upload_token=secrets.token_hex(16),
        created_s=now,
    )


# tasks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    width: int
    height: int
    ext: str
    seed: int
    alpha: bool = False
    res_age: int | None = None

    def render(self) -> bytes:
        return images.render(self.width, self.height, _FORMATS[self.ext], self.seed, self.alpha)

    @property
    def content_type(self) -> str:
        return images.content_type(_FORMATS[self.ext])


@dataclass
class Task:
    id: str
    feature: str
    created_s: float
    ends_s: float
    last_seen_s: float
    outcome: str
    """``success`` or the engine error it ends with."""
    outputs: list[Output] = field(default_factory=list)
    custom_info: dict[str, int] | None = None
    result_ids: list[str] = field(default_factory=list)
    charged: bool = False
    reported: bool = False
    """The client has been told the task ended (or it was dropped)."""


FAULT_OUTCOMES: dict[Fault, str] = {
    Fault.no_face: "error_no_face",
    Fault.blocked: "error_nsfw_content_detected",
}


def new_task_id() -> str:
    """Like the document's example: 48 random bytes in base64 (``+`` and ``/`` included)."""
    return base64.b64encode(secrets.token_bytes(48)).decode()


def stage(task: Task, now: float) -> str:
    """``running``, ``success`` or ``error`` at ``now``."""
    if now < task.ends_s:
        return "running"
    return "success" if task.outcome == "success" else "error"


def end_now(task: Task, fault: Fault | None, now: float) -> None:
    """A fault met while polling a running task ends it at once with the fault's error."""
    if fault in FAULT_OUTCOMES and now < task.ends_s:
        task.outcome, task.outputs, task.ends_s = FAULT_OUTCOMES[fault], [], now


@dataclass(frozen=True)
class Work:
    """What a task body asks for, already checked against the feature."""

    feature: str
    files: dict[str, list[StoredFile]]
    ext: str
    scale: int = 1


def judge(work: Work, seed_text: str) -> tuple[str, list[Output], dict[str, int] | None]:
    """The engine's verdict on the inputs: the outcome, the outputs, aging's custom info."""
    spec = FEATURES[work.feature]
    seed = zlib.crc32(seed_text.encode())
    if not spec.file_sets:
        return "success", [Output(GENERATED_SIDE, GENERATED_SIDE, work.ext, seed)], None
    sizes: dict[str, tuple[int, int]] = {}
    for key in spec.file_sets:
        stored = work.files[key][0]
        kind = "mask" if key == "mask_ids" else "image"
        if stored.data is None:
            return f"error_download_{kind}", [], None
        if len(stored.data) >= MAX_FILE_BYTES:  # the document: "< 10MB"
            return "exceed_max_filesize", [], None
        info = images.inspect(stored.data)
        if info is None:
            return f"error_decode_{kind}", [], None
        if max(info.width, info.height) > spec.max_side:
            return "invalid_parameter", [], None
        if spec.face and info.uniform:
            return "error_no_face", [], None
        sizes[key] = (info.width, info.height)
    width, height = sizes["src_ids"]
    if "mask_ids" in sizes and sizes["mask_ids"] != (width, height):
        return "invalid_parameter", [], None
    width, height = width * work.scale, height * work.scale
    if max(width, height) > MAX_OUTPUT_SIDE:
        return "invalid_parameter", [], None
    alpha = work.feature == "sod"
    if work.feature != "aging":
        return "success", [Output(width, height, work.ext, seed, alpha)], None
    outputs = [Output(width, height, work.ext, seed + n, res_age=age) for n, age in enumerate(AGES)]
    info_ = {
        "age": ESTIMATED_AGE,
        "age_idx": INPUT_AGE_INDEX,
        "age_min": AGES[0],
        "age_max": AGES[-1],
        "num_of_photos": len(AGES),
    }
    return "success", outputs, info_


def start(work: Work, fault: Fault | None, now: float, duration: float) -> Task:
    task_id = new_task_id()
    outcome, outputs, custom = judge(work, task_id)
    if fault in FAULT_OUTCOMES:
        outcome, outputs, custom = FAULT_OUTCOMES[fault], [], None
    return Task(task_id, work.feature, now, now + duration, now, outcome, outputs, custom)


def new_result_id(ext: str) -> str:
    return f"{uuid.uuid4().hex}.{ext}"
