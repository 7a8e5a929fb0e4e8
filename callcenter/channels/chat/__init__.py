"""Web chat: the embeddable widget's chats as routing contacts, handled in the agent console.

`ChatService` (service.py) owns the chats; the pure parts are content.py (limits, nh3 rendering),
identity.py (signed identities), limits.py (rate limits) and waiting.py (estimated wait).
docs/chat.md describes the widget protocol.
"""
from callcenter.channels.chat.service import ChatOptions, ChatService, Site

__all__ = ["ChatOptions", "ChatService", "Site"]
