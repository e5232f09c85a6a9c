"""How llmserve runs under uvicorn: the HTTP protocol class and per-process tuning (server code, not API)."""
