"""The contract: what travels on topics and over HTTP (events, reasons, pane and window records,
metric names, times); it imports nothing of the services."""
