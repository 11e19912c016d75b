"""Benchmarks: `appraise bench scorer` and `appraise bench aggregate`, each against baselines
measured in the same run."""
