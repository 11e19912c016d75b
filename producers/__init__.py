"""The producers: publish listings (bundled data, JSONL, stdin), drift scenarios, sale labels,
and replay of topic ranges."""
