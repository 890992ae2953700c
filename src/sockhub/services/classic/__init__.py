"""Classic services for standard tools: RFC 862 echo, RFC 867 daytime, RFC 868 time, SNTP.

Off by default (``sockhub serve --classic``). They speak their own RFCs on their own
ports, so ``rdate``, ``nc`` and ``socat`` can ask this server the time or echo bytes.
"""

from .service import Bound, ClassicService

__all__ = ["Bound", "ClassicService"]
