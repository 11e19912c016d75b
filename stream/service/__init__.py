"""The one service runtime: the component base, the metrics/health server, child processes
that die with their parent, and ``run_service``, which every long-running command runs."""
