"""How long tests wait for something before declaring it will never happen: one place.

A deadline here is not a speed the test asserts (speed is measured only in ``bench/``): it
is how long a test keeps waiting for an outcome that must come. They are generous, so a
machine busy with other work gives the same verdict as a quiet one; a deadline costs time
only when the test is failing anyway. ``MEDIAGATE_TEST_DEADLINE_SCALE`` multiplies every one
of them, for a machine slower still.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("MEDIAGATE_TEST_DEADLINE_SCALE", "1"))


def scaled(seconds: float) -> float:
    """``seconds`` on this machine."""
    return seconds * SCALE


STARTUP_S = scaled(120)
"""A process (redis-server, gateway, worker, Prometheus, a browser) to come up."""
JOB_S = scaled(120)
"""A job, or a handful of jobs, to reach a terminal status once the upstream has finished."""
LOAD_S = scaled(300)
"""Hundreds of jobs or requests at once (the load and crash tests) to all come to an end."""
STORE_TIMEOUT_S = scaled(30)
"""``MEDIAGATE_REDIS_TIMEOUT_S`` of the gateways and workers the end-to-end tests start: on a
busy machine a process's event loop can be away from a Redis answer for seconds, which is
load, not an outage (the outage test sets its own, production value)."""
FAILOVER_S = scaled(60)
"""Sentinel to call a killed Redis primary down (1 s in the tests), elect a leader and promote
the replica, and the clients to find it."""
REQUEST_S = scaled(120)
"""The HTTP client timeout of one request in the load tests (hundreds in flight at once).
Their clients wait for a free pooled connection without a limit (``httpx.Timeout(REQUEST_S,
pool=None)``): requests queued behind others on a busy machine are slow, not failed."""
KEEP_ALIVE_S = round(scaled(60))
"""How long the test gateways keep an idle client connection open: a test client starved of
CPU can take seconds to send its next request on a reused connection, and a server closing
it meanwhile turns a correct request into a dropped one (a read error on the client)."""
IN_FLIGHT_S = scaled(30)
"""How long a sandbox upstream job runs where a test must catch every one of its jobs in
flight upstream (a worker killed with ``kill -9`` while all of them run): longer than
creating and submitting them all takes on a busy machine."""
DOCUMENTED_RATE_S = scaled(1200)
"""Jobs sent at a provider's documented rate (Perfect's 100 requests per 5 minutes per
address): minutes of waiting by design, however fast the machine."""
