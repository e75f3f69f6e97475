"""Who is asking. Users, sessions, groups and API keys will live here."""
