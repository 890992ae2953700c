"""Chat rooms (PROTOCOL.md section 6): the service, its broker interface, and its history."""

from .broker import ChatBroker, ChatNode, Direct, Event, Joined, Member, Message
from .memory import MemoryBroker
from .service import ChatService, make_broker

__all__ = [
    "ChatBroker",
    "ChatNode",
    "ChatService",
    "Direct",
    "Event",
    "Joined",
    "Member",
    "MemoryBroker",
    "Message",
    "make_broker",
]
