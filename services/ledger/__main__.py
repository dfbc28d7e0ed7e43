"""Run the ledger worker with its health and metrics port: `python -m services.ledger`."""

from __future__ import annotations

from services.ledger.bootstrap import build_app
from shared.production import refuse_unsafe_production
from shared.serve import serve
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    refuse_unsafe_production(settings, "ledger")
    serve(
        "ledger",
        lambda: build_app(settings),
        host=settings.ledger_host,
        port=settings.ledger_port,
        log_level=settings.log_level,
        # Long enough to finish applying what the worker holds.
        shutdown_timeout_s=settings.visibility_timeout_s,
    )


if __name__ == "__main__":
    main()
