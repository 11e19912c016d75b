"""``python -m consumers``: run the scorer with settings from the environment (``APPRAISE_*``).

Same as ``appraise score``. Exit codes: 0 after a clean drain, 2 for bad settings or a model
that cannot be loaded, 3 when the broker cannot be reached, 130 when forced to exit.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from consumers.service import serve
from stream.errors import BrokerError, ConfigError, ModelLoadError
from stream.settings import load_settings


def main() -> int:
    """Run the scorer until SIGTERM/SIGINT; return the exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        asyncio.run(serve(settings, settings.scorer))
    except (ConfigError, ModelLoadError) as exc:
        logging.getLogger("consumers").error("%s", exc)
        return 2
    except BrokerError as exc:
        logging.getLogger("consumers").error("%s", exc)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
