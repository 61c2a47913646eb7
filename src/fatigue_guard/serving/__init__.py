"""HTTP serving: the FastAPI app, the served model slot and the inference fast path."""
