"""Every binding of every provider through a live gateway and the sandbox (providers-check)."""

from __future__ import annotations

import httpx
import pytest

from app.providers_check import check_all, report

pytestmark = [pytest.mark.e2e, pytest.mark.long]


async def test_every_binding_and_variant_succeeds_with_decodable_outputs(
    client: httpx.AsyncClient,
) -> None:
    outcomes = await check_all(client)
    text = report(outcomes)
    assert all(o.ok for o in outcomes), text
    bindings = {(o.case.operation, o.case.provider) for o in outcomes}
    assert len(bindings) == 37, text
    assert len({o.case.operation for o in outcomes}) == 27
    labels = {(o.case.operation, o.case.provider, o.case.label) for o in outcomes}
    for variant in ("style", "wig", "extension", "bangs", "volume"):
        assert ("image.hairstyle", "perfectcorp", f"variant={variant}") in labels
    for model in ("sd1.5", "sdxl", "flux-schnell"):
        assert ("image.generate", "imagepig", f"model={model}") in labels
    assert ("image.quality", "everypixel", "model=ugc") in labels
