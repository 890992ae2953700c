"""Protocol error codes (PROTOCOL.md section 4) as one exception family.

Each wire code is one exception class, mapped in one table, so the server turns any
of them into an ``error`` frame in one place and the clients raise the same class the
server named. ``fatal`` defaults to what the table says and can be overridden where
the protocol allows both (``limit.busy`` refusing a connection is fatal).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthFailed",
    "AuthRequired",
    "BackendUnavailable",
    "BadRequest",
    "ChatBadName",
    "ChatBadText",
    "ChatNickTaken",
    "ChatNoSuchNick",
    "ChatNotJoined",
    "ExecDisabled",
    "ExecNoSuchRun",
    "FileBadPath",
    "FileExists",
    "FileHashMismatch",
    "FileIsDir",
    "FileNotDir",
    "FileNotEmpty",
    "FileNotFound",
    "FileQuota",
    "FileTooLarge",
    "FrameBad",
    "FrameTooLarge",
    "Internal",
    "LimitBusy",
    "LimitIdle",
    "LimitRate",
    "LimitSlowConsumer",
    "OpUnknown",
    "ProtocolError",
    "ServerShuttingDown",
    "SockhubError",
    "error_from_header",
    "error_header",
]


class SockhubError(Exception):
    """The root of every exception sockhub raises on purpose, so a program can catch them all.

    It lives in the protocol layer because the wire errors below are part of the family
    and the protocol package imports nothing else of sockhub.
    """


class ProtocolError(SockhubError):
    """An error that has a protocol code; raised by either side, sent as an ``error`` frame.

    When a client raises one it is the remote family: the server answered with this code.
    """

    code: ClassVar[str] = "internal"
    default_fatal: ClassVar[bool] = False

    def __init__(self, message: str = "", *, fatal: bool | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.fatal = self.default_fatal if fatal is None else fatal

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, fatal={self.fatal})"


def _code(code: str, fatal: bool = False) -> Any:
    def wrap(cls: type[ProtocolError]) -> type[ProtocolError]:
        cls.code = code
        cls.default_fatal = fatal
        _BY_CODE[code] = cls
        return cls

    return wrap


_BY_CODE: dict[str, type[ProtocolError]] = {}


@_code("frame.bad", fatal=True)
class FrameBad(ProtocolError):
    """Malformed frame or header: the frame boundary is lost."""


@_code("frame.too_large", fatal=True)
class FrameTooLarge(ProtocolError):
    """Header or body over the limit, refused before the body is read."""


@_code("op.unknown")
class OpUnknown(ProtocolError):
    pass


@_code("bad.request")
class BadRequest(ProtocolError):
    pass


@_code("auth.required")
class AuthRequired(ProtocolError):
    pass


@_code("auth.failed", fatal=True)
class AuthFailed(ProtocolError):
    pass


@_code("limit.idle", fatal=True)
class LimitIdle(ProtocolError):
    pass


@_code("limit.busy")
class LimitBusy(ProtocolError):
    pass


@_code("limit.rate")
class LimitRate(ProtocolError):
    """Too many requests; ``retry_after`` (seconds), when known, says when one will pass."""

    def __init__(
        self, message: str = "", *, fatal: bool | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, fatal=fatal)
        self.retry_after = retry_after


@_code("limit.slow_consumer", fatal=True)
class LimitSlowConsumer(ProtocolError):
    pass


@_code("chat.bad_name")
class ChatBadName(ProtocolError):
    pass


@_code("chat.nick_taken")
class ChatNickTaken(ProtocolError):
    pass


@_code("chat.not_joined")
class ChatNotJoined(ProtocolError):
    pass


@_code("chat.no_such_nick")
class ChatNoSuchNick(ProtocolError):
    pass


@_code("chat.bad_text")
class ChatBadText(ProtocolError):
    pass


@_code("file.bad_path")
class FileBadPath(ProtocolError):
    pass


@_code("file.not_found")
class FileNotFound(ProtocolError):
    pass


@_code("file.exists")
class FileExists(ProtocolError):
    pass


@_code("file.is_dir")
class FileIsDir(ProtocolError):
    pass


@_code("file.not_dir")
class FileNotDir(ProtocolError):
    pass


@_code("file.not_empty")
class FileNotEmpty(ProtocolError):
    pass


@_code("file.hash_mismatch")
class FileHashMismatch(ProtocolError):
    pass


@_code("file.too_large")
class FileTooLarge(ProtocolError):
    pass


@_code("file.quota")
class FileQuota(ProtocolError):
    pass


@_code("exec.disabled")
class ExecDisabled(ProtocolError):
    pass


@_code("exec.no_such_run")
class ExecNoSuchRun(ProtocolError):
    pass


@_code("backend.unavailable")
class BackendUnavailable(ProtocolError):
    pass


@_code("server.shutting_down", fatal=True)
class ServerShuttingDown(ProtocolError):
    pass


@_code("internal")
class Internal(ProtocolError):
    """A bug on the sending side; details go to its log, never over the wire."""


CODES: frozenset[str] = frozenset(_BY_CODE)


def error_header(
    exc: ProtocolError, *, re: int | None = None, target: int | None = None
) -> dict[str, Any]:
    """The ``error`` header for ``exc``; ``re``/``target`` tie it to the frame that caused it."""
    header: dict[str, Any] = {
        "op": "error",
        "code": exc.code,
        "message": exc.message,
        "fatal": exc.fatal,
    }
    if re is not None:
        header["re"] = re
    if target is not None:
        header["target"] = target
    if isinstance(exc, LimitRate) and exc.retry_after is not None:
        header["retry_after"] = exc.retry_after
    return header


def error_from_header(header: dict[str, Any]) -> ProtocolError:
    """The exception a received ``error`` frame stands for; unknown codes keep their text."""
    code = header.get("code")
    cls = _BY_CODE.get(code, ProtocolError) if isinstance(code, str) else ProtocolError
    message = header.get("message")
    fatal = header.get("fatal")
    exc = cls(
        message if isinstance(message, str) else str(code),
        fatal=fatal if isinstance(fatal, bool) else None,
    )
    if cls is ProtocolError and isinstance(code, str):
        exc.code = code  # type: ignore[misc]
    retry = header.get("retry_after")
    if (
        isinstance(exc, LimitRate)
        and isinstance(retry, int | float)
        and not isinstance(retry, bool)
    ):
        exc.retry_after = float(retry)
    return exc
