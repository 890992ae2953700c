"""The services a server can run; ``default_services`` is what ``sockhub serve`` runs."""

from __future__ import annotations

from ..server.config import Config
from ..server.service import Service
from .chat import ChatService
from .classic import ClassicService
from .clock import ClockService
from .echo import EchoService
from .exec import ExecService
from .files import FilesService

__all__ = ["default_services"]


def default_services(config: Config) -> list[Service]:
    """Every service this configuration enables, in the order ``hello`` lists them."""
    services: list[Service] = [EchoService(), ClockService(), ChatService()]
    services.append(FilesService())
    services.append(ExecService(enabled=config.exec))
    if config.classic:
        services.append(ClassicService())
    return services
