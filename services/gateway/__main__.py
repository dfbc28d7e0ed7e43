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

from shared.settings import Settings


def serve(settings: Settings) -> None:
    import uvloop  # noqa: PLC0415 - after the metrics mode is chosen, see above
    from aiohttp import web  # noqa: PLC0415

    from services.gateway.bootstrap import build_app  # noqa: PLC0415
    from shared.logging import configure_logging  # noqa: PLC0415

    configure_logging("gateway", settings.log_level)
    uvloop.install()
    web.run_app(
        build_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=None,
        print=None,
        reuse_port=True,
        shutdown_timeout=10,
    )


def main() -> None:
    settings = Settings()
    if settings.gateway_workers == 1:
        serve(settings)
        return
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="maas-metrics-"))
    children = []
    for _ in range(settings.gateway_workers):
        pid = os.fork()
        if pid == 0:
            serve(settings)
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
