"""Run the gateway: `python -m services.gateway`.

With MAAS_GATEWAY_WORKERS > 1 the process forks that many workers that share the
port (SO_REUSEPORT), so one machine's cores all serve requests. Metrics are then
aggregated across workers through prometheus-client's multiprocess mode, which
must be chosen before any metric is created, hence the late imports below.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile

from shared.production import checked_settings
from shared.settings import Settings

SHUTDOWN_REFUNDS_S = 5.0


def run_worker(settings: Settings) -> None:
    from services.gateway.bootstrap import build_app  # noqa: PLC0415 - see above
    from shared.serve import serve  # noqa: PLC0415

    serve(
        "gateway",
        build_app,
        settings,
        # The drain window, then time to refund what did not finish in it.
        shutdown_timeout_s=settings.gateway_drain_s + SHUTDOWN_REFUNDS_S,
        reuse_port=True,
    )


def main() -> None:
    settings = checked_settings("gateway")
    if settings.gateway_workers == 1:
        run_worker(settings)
        return
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="maas-metrics-"))
    children = []
    for _ in range(settings.gateway_workers):
        pid = os.fork()
        if pid == 0:
            run_worker(settings)
            os._exit(0)
        children.append(pid)

    def forward(signum: int, _: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for _ in children:
        _, code = os.wait()
        if code != 0 and status == 0:
            status = 1
            forward(signal.SIGTERM, None)  # one worker died: stop all, let the supervisor restart
    sys.exit(status)


if __name__ == "__main__":
    main()
