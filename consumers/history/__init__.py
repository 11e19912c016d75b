"""The history sink (``appraise history``): closed windows from ``prediction-windows`` into
PostgreSQL, one row per window and model version."""
