"""Data plane: SQL metadata, the blob feature store, the outbox that links them."""
