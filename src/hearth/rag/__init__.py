"""Document Q&A: parse, chunk, embed, index and search the files users upload."""
