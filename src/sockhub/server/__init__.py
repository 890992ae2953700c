"""The sockhub server: listeners, connection lifecycle, auth, limits and the op table."""

from .app import Listening, Server
from .config import Config, ConfigError, load_config
from .limits import Limits
from .service import BodySink, OpSpec, Request, ServerContext, Service, Session

__all__ = [
    "BodySink",
    "Config",
    "ConfigError",
    "Limits",
    "Listening",
    "OpSpec",
    "Request",
    "Server",
    "ServerContext",
    "Service",
    "Session",
    "load_config",
]
