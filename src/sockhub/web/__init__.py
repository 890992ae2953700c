"""The browser front end: the page's files and the WebSocket bridge on the web port."""

from .listener import WebListener, page_url
from .peer import SUBPROTOCOL

__all__ = ["SUBPROTOCOL", "WebListener", "page_url"]
