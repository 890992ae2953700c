"""Typed access to header fields: every ill-typed field becomes a ``bad.request`` naming it.

Services read their request fields through these helpers so the rule "a field of the
wrong type or out of range is a non-fatal bad.request naming the field" (section 1)
holds everywhere without each service re-implementing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import BadRequest
from .frames import MAX_ID

__all__ = [
    "get_bool",
    "get_id",
    "get_int",
    "get_number",
    "get_str",
    "get_str_list",
    "get_str_map",
]

_MISSING: Any = object()


def _field(
    header: dict[str, Any], name: str, default: Any, fits: Callable[[Any], bool], what: str
) -> tuple[bool, Any]:
    """``(given, value)``: the field checked with ``fits``, or ``(False, default)`` when it
    is absent and has a default; absent without one, or unfit, is a ``bad.request``."""
    value = header.get(name, default)
    if value is _MISSING:
        raise BadRequest(f"field '{name}' is required")
    if value is default and default is not _MISSING:
        return False, value
    if not fits(value):
        raise BadRequest(f"field '{name}' must be {what}")
    return True, value


def get_id(header: dict[str, Any], name: str = "id") -> int | None:
    """A request id (1 .. 2^53-1) or None when absent."""
    value = header.get(name)
    if value is None:
        return None
    if value.__class__ is not int or not 1 <= value <= MAX_ID:
        raise BadRequest(f"field '{name}' must be an integer from 1 to 2^53-1")
    return int(value)


def get_str(
    header: dict[str, Any], name: str, default: Any = _MISSING, *, max_len: int | None = None
) -> Any:
    given, value = _field(header, name, default, _is_str, "a string")
    if given and max_len is not None and len(value) > max_len:
        raise BadRequest(f"field '{name}' is longer than {max_len} characters")
    return value


def get_bool(header: dict[str, Any], name: str, default: bool = False) -> bool:
    value = header.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"field '{name}' must be true or false")
    return value


def _ranged(
    header: dict[str, Any],
    name: str,
    default: Any,
    kinds: tuple[type, ...],
    what: str,
    lo: float | None,
    hi: float | None,
) -> Any:
    # bool is not an int here, and NaN (not equal to itself) is no number
    given, value = _field(header, name, default, lambda v: v.__class__ in kinds and v == v, what)
    if given and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        raise BadRequest(f"field '{name}' must be between {lo} and {hi}")
    return value


def get_int(
    header: dict[str, Any],
    name: str,
    default: Any = _MISSING,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> Any:
    return _ranged(header, name, default, (int,), "an integer", lo, hi)


def get_number(
    header: dict[str, Any],
    name: str,
    default: Any = _MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> Any:
    return _ranged(header, name, default, (int, float), "a number", lo, hi)


def get_str_list(header: dict[str, Any], name: str, default: Any = _MISSING) -> Any:
    return _field(header, name, default, _is_str_list, "a list of strings")[1]


def get_str_map(header: dict[str, Any], name: str, default: Any = _MISSING) -> Any:
    return _field(header, name, default, _is_str_map, "an object of strings")[1]


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
