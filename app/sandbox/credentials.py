"""The credentials the emulators accept, and the gateway uses in sandbox mode."""

from __future__ import annotations

IMAGEPIG_API_KEY = "sandbox-imagepig-key"
PIXELAPI_API_KEY = "pk_live_sandbox000000000000"
PIXELAPI_PLAN = "scale"
"""The plan the PixelAPI emulator's key is on (its emulator runs the Scale plan's rate)."""
IMAGEPIPELINE_API_KEY = "sandbox-imagepipeline-key"
EVERYPIXEL_KEY_PAIRS = [
    (f"sandbox-everypixel-id-{n}", f"sandbox-everypixel-secret-{n}") for n in range(4)
]
"""Everypixel lets one account hold four key pairs; the sandbox accepts all of them."""
PERFECTCORP_CLIENT_ID = "sandbox-perfectcorp-client"
PERFECTCORP_CLIENT_SECRET = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuzOsj2DLQW89jv3Dj6lGgwUzvaV2QFA0MQan4OQxoWEr"
    "Y8xxqqTgEnWyqmuY00s9kJ2j9I4BMZjIABlJV8j8/kZ8YCs/uMj9wu+LJ8I7/BxonwA8ZSfbzjvjVezOoaW81D41"
    "5OgHPCDTtYHrlmmpK2ggdi9UAf9CwyXOxOFSbApVtRVAFnmA/Hcso5kpOHJZ0k4/dlejuJevHhmPL7uXBub/sdpS"
    "LozqRlqmRgvm7PWiCZbfySDkwIRwqEXlUBfY5eOGhG4IWv42R0DR9bFSJLu74rIEQ4VhZjeREgG+zVIZy58Irolh"
    "W2TKLWOtldLJC1k1+yiZfb2Uzpsiwd8j2wIDAQAB"
)
"""The X.509 public key (base64 DER) the client encrypts its id token with."""
PERFECTCORP_PRIVATE_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7M6yPYMtBbz2O
/cOPqUaDBTO9pXZAUDQxBqfg5DGhYStjzHGqpOASdbKqa5jTSz2QnaP0jgExmMgA
GUlXyPz+RnxgKz+4yP3C74snwjv8HGifADxlJ9vOO+NV7M6hpbzUPjXk6Ac8INO1
geuWaakraCB2L1QB/0LDJc7E4VJsClW1FUAWeYD8dyyjmSk4clnSTj92V6O4l68e
GY8vu5cG5v+x2lIujOpGWqZGC+bs9aIJlt/JIOTAhHCoReVQF9jl44aEbgha/jZH
QNH1sVIku7visgRDhWFmN5ESAb7NUhnLnwiuiWFbZMotY62V0skLWTX7KJl9vZTO
myLB3yPbAgMBAAECggEAN0Wcj4DOwnUrwcpfMU2Tih/BFR+DeJ21qzwB2T7HAJUG
EKNOdEnV9t1VcUfviYNPnCFPRWegJpqrgov0wbyQJit9kY9zcwW1FxdPCOAqgdeJ
dFjHfD52gb/g8X/HyqZ6yFfN5dY0PKacm5zOiEyOLEjEPODgdu59Mc057ZtxkIBD
RvBtV63b/KH0uNdq1TZBD/xnnA63DY0MSI1Aoroi98Vsrta7MWiyD+Y9TCLRFyEy
T/Wm5BI2qZ7p1OctnPA26uvjnsm4GK70LYN2chg1+BFO92eVdmZEbdK9E49frzZ8
QmRWyNq5kk2zBs06zGmxX4RqIvde0wvj/ZT86xyUoQKBgQDkUyOMejLtGwcpBOwS
tY2cVMeprtWH+xgJYgR36DisYrOV0+BVvV4BRInPdRZN1rV62A1mOL6pP2bl/iib
uhd6k59Itkl0fZFvzte9wacHOJ71UlO6153TBw0nv7gIvExRMkmHPTmq+ftk9tS8
s3JiRe/lhGO/C78gm8j20ivbOQKBgQDR5IBesvZhyRGWTaChLfga8ZYLBGosgycx
qQLKmUMtt/YSyK8aoY2yXAOFQwAPVk5sIgFoE+ADaVVhH/QiqWzh8c8zsEdBQGyU
IylI1oWl6hWk7IViFRfO4UD4R9SOeYK8BNU2VWBME8mxJYPHt6Mi4qcGA4rbGe0A
yYYefkyzswKBgEELZj8ouMVPQ9TtsAsMaZE1ncO7KN2aLJjPsZIvN6X0YFC4kVob
nmIiElhldLssBXs/fWG3nKk+hKPUqeDjPLkQwPnH5FkpRHtjo5ZNSrYF7VLZ5zx9
HFr30UmXlmf2rI8dElFSodERcgqrPqObQ2S3o8Xw1zGfuQ0jFDcsXI4RAoGAOOHl
TETR8uRMCODW1Heh0qOAV1IF+DQ/Df1QzVlF1IEThjmvAtefkCPRrG7g+Ecaj8GT
ggJI5oPIaL8BKdeis4UV81slpHByPJ9e0+eXZsSOwxh6eX9f6WgwdFj7KPWTUaM5
qTTwGQ4PzhttoFWLN6wXOdEB86kOCvWSjHcMEHMCgYEAsJ1yi1Pg1zkKiuFyUoNP
M7kKH3JaG25vtG6ffmQ2//AV3p3lL8NXsH7dnTK7pwAC9ZQRXvoRf6JIoeDfDJd6
MK8uPId0Ny0UJXy71Q5EZiSD7I57LRQvAabYW+RcuY/tDFmU7xtqpdzbSPGX4dF6
yPdY0CDzGAmiOCPqifRC0rw=
-----END PRIVATE KEY-----
"""
"""The matching RSA private key: only the emulator uses it, to decrypt id tokens."""


def sandbox_credentials(provider: str) -> list[dict[str, str]]:
    """The credential pool the gateway uses for ``provider`` in sandbox mode."""
    pools: dict[str, list[dict[str, str]]] = {
        "imagepig": [{"api_key": IMAGEPIG_API_KEY}],
        "pixelapi": [{"api_key": PIXELAPI_API_KEY, "plan": PIXELAPI_PLAN}],
        "imagepipeline": [{"api_key": IMAGEPIPELINE_API_KEY}],
        "everypixel": [{"client_id": i, "client_secret": s} for i, s in EVERYPIXEL_KEY_PAIRS],
        "perfectcorp": [
            {"client_id": PERFECTCORP_CLIENT_ID, "client_secret": PERFECTCORP_CLIENT_SECRET}
        ],
    }
    return pools.get(provider, [])
