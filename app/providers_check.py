"""``mediagate providers-check``: every (operation, provider) binding, run through a gateway.

For each binding listed by ``GET /v1/operations`` — and each variant within it (every
``model`` and ``scale`` value the binding accepts, the five hair-style variants, both quality
models, both lipsync models, remove-object by mask and by prompt) — it submits a job pinned to
that provider (no fallback), waits for it, downloads every artifact through its signed URL and
checks the bytes decode as the media type the operation promises (image, audio, video), or
that structured results came back for the analyses. Styles and voices are taken from
``GET /v1/styles`` and ``GET /v1/voices``, as a client would.

Run against a gateway in sandbox mode; by default it starts one (embedded Redis, sandbox
providers) on a free port and stops it afterwards. Exit status 1 when any binding failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from app.config import SANDBOX_TENANT_KEY
from app.domain.media_types import sniff_av
from app.jobs.probe import duration_s
from app.sandbox.av import mp4_bytes, wav_bytes

OUTPUT_KIND: dict[str, str] = {
    "image.keywords": "data",
    "image.caption": "data",
    "image.faces": "data",
    "image.quality": "data",
    "video.keywords": "data",
    "video.swap_face": "video",
    "video.lipsync": "video",
    "video.generate": "video",
    "audio.speech": "audio",
    "audio.generate": "audio",
    "audio.clone_voice": "audio",
}
"""What each operation returns; every operation not named here returns images."""

VARIANTS: dict[str, dict[str, list[Any]]] = {
    "image.generate": {"model": ["sd1.5", "sdxl", "flux-schnell"]},
    "image.hairstyle": {"variant": ["style", "wig", "extension", "bangs", "volume"]},
    "image.quality": {"model": ["stock", "ugc"]},
    "video.lipsync": {"model": ["normal", "fast"]},
}
"""Variants the binding's parameter table does not enumerate."""

ENUMERATED = ("model", "scale")
"""Parameters whose every accepted value (per binding) is a case of its own."""


def _image(seed: int = 0, size: int = 256) -> str:
    gradient = Image.linear_gradient("L").resize((size, size))
    tint = Image.new("L", (size, size), (seed * 67) % 256)
    img = Image.merge("RGB", (gradient, tint, gradient.transpose(Image.Transpose.ROTATE_90)))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return base64.b64encode(out.getvalue()).decode()


def _mask(size: int = 256) -> str:
    img = Image.new("L", (size, size), 0)
    img.paste(255, (size // 4, size // 4, size * 3 // 4, size * 3 // 4))
    out = io.BytesIO()
    img.convert("RGB").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def base_bodies() -> dict[str, list[dict[str, Any]]]:
    """Minimal valid requests per operation (several where the operation has input modes)."""
    photo = {"data": _image(1)}
    other = {"data": _image(2)}
    video = {"data": _b64(mp4_bytes(2.0, 64, 64))}
    audio = {"data": _b64(wav_bytes(2.0))}
    prompt = "a red fox standing in fresh snow, golden hour"
    return {
        "image.generate": [{"prompt": prompt}],
        "image.remove_background": [{"image": photo}],
        "image.replace_background": [{"image": photo, "prompt": "a sunny beach"}],
        "image.upscale": [{"image": photo}],
        "image.restore_face": [{"image": photo}],
        "image.remove_object": [
            {"image": photo, "mask": {"data": _mask()}},
            {"image": photo, "prompt": "the lamp post"},
        ],
        "image.outpaint": [{"image": photo, "prompt": prompt, "left": 64, "right": 64}],
        "image.colorize": [{"image": photo}],
        "image.swap_face": [{"source": photo, "target": other}],
        "image.hairstyle": [{"image": photo}],
        "image.age": [{"image": photo}],
        "image.transfer_makeup": [{"image": photo, "reference": other}],
        "image.try_on": [
            {"person": photo, "garment": other, "category": "upper_body", "gender": "female"}
        ],
        "image.lock_identity": [{"face": photo, "prompt": prompt}],
        "image.replace_identity": [{"image": photo, "face": other, "prompt": "a smiling woman"}],
        "image.instamodel": [{"face": photo, "prompt": "studio portrait, soft light"}],
        "image.keywords": [{"image": photo}],
        "image.caption": [{"image": photo}],
        "image.faces": [{"image": photo}],
        "image.quality": [{"image": photo}],
        "video.keywords": [{"video": video}],
        "video.swap_face": [{"source": photo, "target": video}],
        "video.lipsync": [{"video": video, "audio": audio}],
        "video.generate": [{"prompt": prompt, "duration_s": 2}],
        "audio.speech": [{"text": "Hello from the gateway."}],
        "audio.generate": [{"prompt": "calm piano", "duration_s": 5}],
        "audio.clone_voice": [{"text": "Hello from the gateway.", "reference_audio": audio}],
    }


@dataclass
class Case:
    operation: str
    route: str
    provider: str
    label: str
    body: dict[str, Any]


@dataclass
class Outcome:
    case: Case
    ok: bool
    detail: str
    seconds: float
    job_id: str | None = None
    outputs: list[str] = field(default_factory=list)


async def plan_cases(client: httpx.AsyncClient) -> list[Case]:
    operations = (await client.get("/v1/operations")).raise_for_status().json()["data"]
    voices = (await client.get("/v1/voices")).raise_for_status().json()["data"]
    bodies = base_bodies()
    cases: list[Case] = []
    for op in operations:
        name, route = op["name"], op["route"]
        for binding in op["providers"]:
            provider = binding["name"]
            accepted = {p["name"]: p.get("values") for p in binding["parameters"]}
            variants: list[tuple[str, dict[str, Any]]] = [("", {})]
            for param, values in VARIANTS.get(name, {}).items():
                if param in accepted:
                    allowed: list[Any] = accepted[param] or values
                    variants = [(f"{param}={v}", {param: v}) for v in values if v in allowed]
            for param in ENUMERATED:
                listed: list[Any] = accepted.get(param) or []
                if listed and param not in VARIANTS.get(name, {}):
                    variants = [
                        (f"{label} {param}={v}".strip(), {**extra, param: v})
                        for label, extra in variants
                        for v in listed
                    ]
            for body in bodies[name]:
                mode = next((m for m in ("mask", "prompt") if m in body), "")
                if name == "image.remove_object" and mode not in accepted:
                    continue  # this provider removes objects the other way only
                trimmed = {k: v for k, v in body.items() if k in accepted}
                for label, extra in variants:
                    request = {**trimmed, **extra}
                    if "style_id" in accepted and name in ("image.hairstyle", "image.generate"):
                        style = await _first_style(client, name, extra.get("variant"))
                        if style is None:
                            continue
                        request["style_id"] = style
                    if name == "audio.speech":
                        mine = [v["id"] for v in voices if v["provider"] == provider]
                        request["voice"] = mine[0] if mine else "jack"
                    by = f"by {mode}" if name == "image.remove_object" else ""
                    tag = " ".join(t for t in (label, by) if t)
                    cases.append(Case(name, route, provider, tag, request))
    return cases


async def _first_style(
    client: httpx.AsyncClient, operation: str, variant: str | None
) -> str | None:
    params: dict[str, str | int] = {"operation": operation, "page_size": 1}
    if variant:
        params["variant"] = variant
    styles = (await client.get("/v1/styles", params=params)).raise_for_status().json()["data"]
    return str(styles[0]["id"]) if styles else None


async def run_case(client: httpx.AsyncClient, case: Case, timeout_s: float) -> Outcome:
    started = time.monotonic()
    body = {**case.body, "provider": case.provider, "fallback": False}
    try:
        response = await client.post(case.route, json=body, headers={"Prefer": "wait=30"})
        if response.status_code not in (200, 202):
            return Outcome(case, False, f"HTTP {response.status_code}: {response.text[:200]}", 0)
        job = response.json()
        deadline = started + timeout_s
        while job["status"] not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                return Outcome(case, False, f"still {job['status']}", timeout_s, job["id"])
            await asyncio.sleep(0.2)
            job = (await client.get(f"/v1/jobs/{job['id']}")).json()
        seconds = time.monotonic() - started
        if job["status"] != "succeeded":
            return Outcome(case, False, f"{job['status']}: {job.get('error')}", seconds, job["id"])
        outputs = await _check_outputs(client, case.operation, job)
        return Outcome(case, True, ", ".join(outputs), seconds, job["id"], outputs)
    except (httpx.HTTPError, AssertionError, ValueError, KeyError) as exc:
        return Outcome(case, False, f"{type(exc).__name__}: {exc}", time.monotonic() - started)


async def _check_outputs(
    client: httpx.AsyncClient, operation: str, job: dict[str, Any]
) -> list[str]:
    kind = OUTPUT_KIND.get(operation, "image")
    output = job["output"] or {}
    if kind == "data":
        assert output.get("data"), "no structured result"
        return [f"data: {', '.join(sorted(output['data']))}"]
    artifacts = output.get("artifacts") or []
    assert artifacts, "no artifact"
    found = []
    for artifact in artifacts:
        content = (await client.get(artifact["url"], headers={"Authorization": ""})).content
        found.append(_decode(kind, artifact["content_type"], content))
    return found


def _decode(kind: str, content_type: str, content: bytes) -> str:
    assert content_type.startswith(f"{kind}/"), f"{content_type} is not {kind}"
    if kind == "image":
        with Image.open(io.BytesIO(content)) as img:
            img.load()
            return f"{content_type} {img.width}x{img.height}"
    sniffed = sniff_av(content)
    assert sniffed is not None and sniffed.startswith(f"{kind}/"), f"bytes are not {kind}"
    if sniffed == "audio/wav":
        with wave.open(io.BytesIO(content)) as wav:
            assert wav.getnframes() > 0, "empty WAV"
    seconds = duration_s(content, sniffed)
    assert seconds is None or seconds > 0, "zero duration"
    return f"{sniffed} {seconds or 0:.1f}s"


async def check_all(client: httpx.AsyncClient, timeout_s: float = 90) -> list[Outcome]:
    """Run every case (a few at a time) and return the outcomes in the catalog's order."""
    cases = await plan_cases(client)
    gate = asyncio.Semaphore(8)

    async def one(case: Case) -> Outcome:
        async with gate:
            return await run_case(client, case, timeout_s)

    return list(await asyncio.gather(*(one(c) for c in cases)))


def report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        mark = "ok  " if o.ok else "FAIL"
        label = f" [{o.case.label}]" if o.case.label else ""
        lines.append(
            f"{mark} {o.case.operation:26} {o.case.provider:14}{label:28} {o.seconds:5.1f}s  "
            f"{o.detail}"
        )
    bindings = {(o.case.operation, o.case.provider) for o in outcomes}
    good = {
        b
        for b in bindings
        if all(o.ok for o in outcomes if (o.case.operation, o.case.provider) == b)
    }
    lines.append(
        f"\n{len(good)}/{len(bindings)} bindings succeeded; "
        f"{sum(o.ok for o in outcomes)}/{len(outcomes)} cases (variants and models included)"
    )
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _sandbox_gateway() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
        env.update(
            MEDIAGATE_SANDBOX="true",
            MEDIAGATE_DATA_DIR=data_dir,
            MEDIAGATE_PUBLIC_BASE_URL=url,
            MEDIAGATE_SANDBOX_JOB_S="0.3",
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the gateway did not start") from None
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _check(url: str, api_key: str) -> bool:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    ) as client:
        outcomes = await check_all(client)
    print(report(outcomes))
    return all(o.ok for o in outcomes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mediagate providers-check", description=__doc__)
    parser.add_argument("--url", help="a running gateway in sandbox mode (default: start one)")
    parser.add_argument("--api-key", default=SANDBOX_TENANT_KEY)
    args = parser.parse_args(argv)
    if args.url:
        ok = asyncio.run(_check(args.url, args.api_key))
    else:
        with _sandbox_gateway() as url:
            ok = asyncio.run(_check(url, args.api_key))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
