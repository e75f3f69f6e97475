"""Conversations: chats and their messages, prompt assembly, streamed answers."""
