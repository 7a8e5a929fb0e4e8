"""Channels other than voice, turned into routing contacts: web chat (`chat/`), email (`email/`)."""
