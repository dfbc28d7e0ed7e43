"""The test suite. Under pytest-xdist each worker draws loopback ports from a range of its
own (`MAAS_LOCAL_PORTS`, below the kernel's ephemeral ports), so two workers never start
servers on the same port."""

import os

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw"):
    _first = 20_000 + 2_000 * int(_worker.removeprefix("gw"))
    os.environ.setdefault("MAAS_LOCAL_PORTS", f"{_first}-{_first + 1_999}")
