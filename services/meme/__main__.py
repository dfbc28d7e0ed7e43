"""`python -m services.meme`: serve the meme service until SIGTERM/SIGINT."""

from __future__ import annotations

from services.meme.bootstrap import build_app
from shared.production import refuse_unsafe_production
from shared.serve import serve
from shared.settings import Settings

# In-flight AI calls get this long to finish after a stop signal; new ones are refused.
SHUTDOWN_TIMEOUT_S = 30.0


def main() -> None:
    settings = Settings()
    refuse_unsafe_production(settings, "meme")
    serve(
        "meme",
        lambda: build_app(settings),
        host=settings.meme_host,
        port=settings.meme_port,
        log_level=settings.log_level,
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
    )


if __name__ == "__main__":
    main()
