"""Reading task data: bad rows skipped and counted, text that is not valid Unicode repaired,
pictures decoded to squares, and a user's own data file (JSONL, CSV, Parquet, a saved Hugging Face
dataset) read a chunk at a time into a task's examples."""
