"""`python -m services.meme`: serve the meme service until SIGTERM/SIGINT."""

from __future__ import annotations

from services.meme.bootstrap import build_app
from shared.production import checked_settings
from shared.serve import serve

# In-flight AI calls get this long to finish after a stop signal; new ones are refused.
SHUTDOWN_TIMEOUT_S = 30.0


def main() -> None:
    serve("meme", build_app, checked_settings("meme"), shutdown_timeout_s=SHUTDOWN_TIMEOUT_S)


if __name__ == "__main__":
    main()
