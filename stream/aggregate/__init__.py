"""The stream app (`appraise aggregate`, faust-streaming): pane partials into event-time windows of
quantiles and drift, and sale labels joined to predictions for realised error."""
