"""Run the ledger worker with its health and metrics port: `python -m services.ledger`."""

from __future__ import annotations

from services.ledger.bootstrap import build_app
from shared.production import checked_settings
from shared.serve import serve


def main() -> None:
    settings = checked_settings("ledger")
    # Long enough to finish applying what the worker holds.
    serve("ledger", build_app, settings, shutdown_timeout_s=settings.visibility_timeout_s)


if __name__ == "__main__":
    main()
