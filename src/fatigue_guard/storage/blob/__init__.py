"""The blob side: a local folder or Azure Blob Storage, and the Parquet feature store on it."""
