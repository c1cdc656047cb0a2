"""Reading task data: bad rows skipped and counted, pictures decoded to squares."""
