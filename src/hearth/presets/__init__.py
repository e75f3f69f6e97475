"""Saved presets ("models" in Open WebUI's terms): a base model with a system prompt,
parameters and collections, shared with groups; a chat can start from one."""
