"""appraise: the shared core (event contract, settings, model, sketches, embedded broker, CLI)."""

__version__ = "0.1.0"
