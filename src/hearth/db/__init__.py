"""Database access: the embedded server, the async engine and sessions, migrations."""
