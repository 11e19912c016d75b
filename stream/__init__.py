"""appraise's core: the contract, settings, model, Kafka, service runtime, stream app, tools and
the `appraise` command, in layers (CONTRIBUTING.md)."""

__version__ = "0.1.0"
