"""The credentials the emulators accept, and the gateway uses in sandbox mode."""

from __future__ import annotations

IMAGEPIG_API_KEY = "sandbox-imagepig-key"
PIXELAPI_API_KEY = "pk_live_sandbox000000000000"
IMAGEPIPELINE_API_KEY = "sandbox-imagepipeline-key"
EVERYPIXEL_KEY_PAIRS = [
    (f"sandbox-everypixel-id-{n}", f"sandbox-everypixel-secret-{n}") for n in range(4)
]
"""Everypixel lets one account hold four key pairs; the sandbox accepts all of them."""
PERFECTCORP_CLIENT_ID = "sandbox-perfectcorp-client"
PERFECTCORP_CLIENT_SECRET = ""
"""The X.509 public key (base64 DER) the client encrypts its id token with."""


def sandbox_credentials(provider: str) -> list[dict[str, str]]:
    """The credential pool the gateway uses for ``provider`` in sandbox mode."""
    pools: dict[str, list[dict[str, str]]] = {
        "imagepig": [{"api_key": IMAGEPIG_API_KEY}],
        "pixelapi": [{"api_key": PIXELAPI_API_KEY}],
        "imagepipeline": [{"api_key": IMAGEPIPELINE_API_KEY}],
        "everypixel": [{"client_id": i, "client_secret": s} for i, s in EVERYPIXEL_KEY_PAIRS],
        "perfectcorp": [
            {"client_id": PERFECTCORP_CLIENT_ID, "client_secret": PERFECTCORP_CLIENT_SECRET}
        ],
    }
    return pools.get(provider, [])
