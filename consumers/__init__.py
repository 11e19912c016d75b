"""appraise consumers: the async scorer and its metrics sidecar."""
