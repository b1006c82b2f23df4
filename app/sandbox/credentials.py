"""The credentials the emulators accept, and the gateway uses in sandbox mode."""

IMAGEPIG_API_KEY = "sandbox-imagepig-key"
PIXELAPI_API_KEY = "pk_live_sandbox000000000000"
