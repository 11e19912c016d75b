"""``appraise serve``: the HTTP price service (FastAPI under uvicorn), monitored like the stream."""
