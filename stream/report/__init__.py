"""`appraise report`: the newest window records as a feature table, JSON and an HTML page."""
