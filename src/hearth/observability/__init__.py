"""Logs, metrics and health: what an operator reads."""
