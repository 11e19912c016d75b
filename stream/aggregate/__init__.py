"""The stream app: pane partials into event-time windows of quantiles and drift, and realised
error from sale labels (faust-streaming). ``appraise aggregate`` runs
:func:`stream.aggregate.service.run_aggregate`; ``appraise bench aggregate`` runs
:func:`stream.aggregate.bench.bench_aggregate`."""
