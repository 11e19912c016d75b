"""The project's exceptions: one root, and a ``retriable`` flag callers check instead of long
``except`` lists (the scorer retries what is retriable and dead-letters the rest)."""

from __future__ import annotations


class AppraiseError(Exception):
    """Root of every error appraise raises on purpose.

    ``retriable`` says whether trying the same thing again may succeed (a broker that is not up
    yet) or not (bad data, a bad setting).
    """

    retriable: bool = False


class ConfigError(AppraiseError):
    """A setting is missing or has a value that cannot work; raised at start-up."""


class ModelLoadError(AppraiseError):
    """A model directory is missing, incomplete, corrupt, tampered with, or not trusted."""


class BrokerError(AppraiseError):
    """The Kafka broker could not be started or reached."""

    retriable = True


class DataError(AppraiseError):
    """Input that cannot be used (a CLI argument, a file); never retriable."""
