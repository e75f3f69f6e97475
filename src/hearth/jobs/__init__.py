"""The PostgreSQL-backed job queue (procrastinate) and the tasks registered on it."""
