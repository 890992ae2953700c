"""Server configuration: flags, then a TOML file, then ``SOCKHUB_*`` variables, then defaults.

Precedence is DESIGN.md's: a flag beats the config file, which beats the environment.
Everything is checked here, once, before anything starts: an unknown key, a value of
the wrong type or out of range, or a setting whose feature is not built yet
(``NOT_BUILT``) is a ``ConfigError`` whose one line names the setting and what to do,
so a typo or a wish never silently keeps a default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .datadir import default_data_folder
from .limits import Limits

__all__ = [
    "BROKER_SCHEMES",
    "CLASSIC_SERVICES",
    "NOT_BUILT",
    "Config",
    "ConfigError",
    "NotBuilt",
    "load_config",
    "settings_of",
]

DEFAULT_PORT = 9696
DEFAULT_WEB_PORT = 9697
CLASSIC_SERVICES = ("echo", "daytime", "time", "sntp")
BROKER_SCHEMES = ("redis://", "unix://")
"""What a ``broker`` URL may start with (docs/scale-out.md)."""
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration value or key that cannot be used; the message says which."""


@dataclass(frozen=True, slots=True)
class NotBuilt:
    """A setting whose feature is not built yet: the values it may be given meanwhile
    (the first is what the server runs with; none: it may not be given at all)."""

    accepts: tuple[Any, ...]
    todo: str


NOT_BUILT: dict[str, NotBuilt] = {}
"""What is not implemented yet, in one place: a value outside ``accepts`` is a usage error.
The branch that builds a feature deletes its line(s) here, and nothing else."""


@dataclass(kw_only=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    udp: bool = True
    unix: Path | None = None
    data: Path = Path("sockhub-data")
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    exec: bool = False
    exec_root: Path | None = None
    """Where commands run (``cwd`` is relative to it); default the data folder's ``exec/``."""
    exec_unsandboxed: bool = False
    """Run commands without the bubblewrap sandbox (docs/exec.md): only by explicit choice."""
    broker: str = "memory"
    workers: int = 1
    web: bool = True
    web_port: int = DEFAULT_WEB_PORT
    web_hosts: tuple[str, ...] = ()
    """Host names the web port answers besides IP literals and localhost (docs/web.md)."""
    web_origins: tuple[str, ...] = ()
    """Origins besides the page's own that may open its WebSocket (docs/web.md)."""
    classic: bool = False
    classic_services: tuple[str, ...] = ("echo", "daytime", "time", "sntp")
    """Which classic services ``classic`` turns on (docs/classic.md)."""
    classic_echo_port: int = 10007
    classic_daytime_port: int = 10013
    classic_time_port: int = 10037
    classic_sntp_port: int = 10123
    anonymous_grants: tuple[str, ...] = ("echo", "time", "chat")
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)


_FIELDS = {f.name: f for f in dataclasses.fields(Config) if f.name != "limits"}
_LIMIT_FIELDS = {f.name: f for f in dataclasses.fields(Limits)}
_NEVER_ANONYMOUS = frozenset({"files", "exec"})


_HINTS = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a finite number",
    "Path": "a path",
    "tuple": "a comma-separated list",
    "str": "a string",
}


def _convert(name: str, kind: Any, value: Any) -> Any:
    """``value`` (from TOML, the environment or a flag) as the field's type."""
    kind = str(kind).partition("[")[0].partition(" ")[0]
    try:
        return _as(kind, value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{name}: cannot use {value!r}; give {_HINTS.get(kind, kind)}") from exc


def _as(kind: str, value: Any) -> Any:
    if kind == "bool":
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ValueError(value)
        return value
    if isinstance(value, bool):  # true is no number, path or name
        raise ValueError(value)
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind == "float":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if kind == "tuple":
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(i).strip() for i in items if str(i).strip())
    if not isinstance(value, str | Path):  # a TOML number or table where text belongs
        raise TypeError(value)
    if kind == "Path":
        return None if value in (None, "") else Path(str(value)).expanduser()
    return str(value)


Given = dict[str, tuple[Any, str]]
"""A setting ("port", "limits.max_body") -> its value and where it was given, for messages."""


def _setting(key: str) -> tuple[str, Any]:
    """The field named by ``key`` (a setting or ``limits.NAME``): its full name and type."""
    name = key.removeprefix("limits.")
    if key.startswith("limits.") and name in _LIMIT_FIELDS:
        return key, _LIMIT_FIELDS[name].type
    if key in _FIELDS:
        return key, _FIELDS[key].type
    if key in _LIMIT_FIELDS:
        return f"limits.{key}", _LIMIT_FIELDS[key].type
    raise KeyError(key)


def _from_env(env: Mapping[str, str]) -> Given:
    given: Given = {}
    names = [*_FIELDS, *(f"limits.{n}" for n in _LIMIT_FIELDS)]
    for key in names:
        var = "SOCKHUB_" + key.replace("limits.", "limit_").upper()
        raw = env.get(var)
        if raw is not None:
            given[key] = (_convert(var, _setting(key)[1], raw), var)
    return given


def _from_toml(path: Path) -> Given:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    raw_limits = doc.pop("limits", {})
    if not isinstance(raw_limits, dict):
        raise ConfigError(f"config file {path}: limits must be a table ([limits])")
    unknown = sorted(set(doc) - set(_FIELDS)) + [
        f"limits.{k}" for k in sorted(set(raw_limits) - set(_LIMIT_FIELDS))
    ]
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}")
    entries = [*doc.items(), *((f"limits.{k}", v) for k, v in raw_limits.items())]
    return {
        key: (_convert(f"{key} in {path}", _setting(key)[1], value), f"{key} in {path}")
        for key, value in entries
    }


def _from_flags(flags: Mapping[str, Any]) -> Given:
    given: Given = {}
    for key, value in flags.items():
        if value is None:
            continue
        try:
            name, kind = _setting(key)
        except KeyError:
            raise ConfigError(f"unknown setting {key} (see docs/limits.md for limits)") from None
        given[name] = (_convert(key, kind, value), key)
    return given


T = TypeVar("T")


def settings_of(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """``cls`` (a dataclass of settings) from ``values`` converted to its field types.

    Other settings objects (the course lab's limits) take their flags the way ``Limits``
    does, so a value means the same thing everywhere; unknown names are an error.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown {where} {', '.join(unknown)} (known: {', '.join(sorted(fields))})"
        )
    return cls(**{k: _convert(f"{where} {k}", fields[k].type, v) for k, v in values.items()})


def load_config(
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge the sources; ``flags`` holds only what the user actually gave (None = not given).

    Limits may be given as flags too, under their own names.
    """
    env = os.environ if env is None else env
    given = _from_env(env)
    file = config_file or (Path(env["SOCKHUB_CONFIG"]) if env.get("SOCKHUB_CONFIG") else None)
    if file is not None:
        given.update(_from_toml(file))
    given.update(_from_flags(flags or {}))
    _refuse_not_built(given)
    top = {k: v for k, (v, _) in given.items() if not k.startswith("limits.")}
    for key, rule in NOT_BUILT.items():
        if key not in top and rule.accepts:
            top[key] = rule.accepts[0]
    top.setdefault("data", default_data_folder(env))
    limits = {
        k.removeprefix("limits."): v for k, (v, _) in given.items() if k.startswith("limits.")
    }
    config = Config(**top, limits=Limits(**limits))
    _check(config, given)
    return config


def _refuse_not_built(given: Given) -> None:
    for key, rule in NOT_BUILT.items():
        if key in given and given[key][0] not in rule.accepts:
            value, where = given[key]
            raise ConfigError(f"{where} = {value!r} is not supported yet: {rule.todo}")


def _check(config: Config, given: Given) -> None:
    def fail(key: str, problem: str) -> ConfigError:
        where = given.get(key, (None, key))[1]
        return ConfigError(f"{where}: {problem}")

    for name in ("port", "web_port", *(f"classic_{s}_port" for s in CLASSIC_SERVICES)):
        port = getattr(config, name)
        if not 0 <= port <= 65535:
            raise fail(name, f"{port} is not a port; give 0 to 65535 (0: any free port)")
    unknown = set(config.classic_services) - set(CLASSIC_SERVICES)
    if unknown:
        raise fail(
            "classic_services",
            f"unknown {', '.join(sorted(unknown))}; choose from {', '.join(CLASSIC_SERVICES)}",
        )
    leaked = _NEVER_ANONYMOUS & set(config.anonymous_grants)
    if leaked:
        raise fail(
            "anonymous_grants",
            f"may not include {', '.join(sorted(leaked))}; grant it to users instead",
        )
    if config.log_level.lower() not in LOG_LEVELS:
        raise fail("log_level", f"{config.log_level!r}; choose from {', '.join(LOG_LEVELS)}")
    if config.broker != "memory" and not config.broker.startswith(BROKER_SCHEMES):
        raise ConfigError(f"broker {config.broker!r}: use 'memory' or a redis://HOST:PORT URL")
    if config.workers < 1:
        raise ConfigError(f"workers must be at least 1, not {config.workers}")
    if config.workers > 1 and config.broker == "memory":
        raise ConfigError(
            "workers > 1 needs a broker every worker shares (--broker redis://HOST:PORT)"
        )
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("tls_cert and tls_key go together; give both or neither")
    for f in dataclasses.fields(Limits):
        value = getattr(config.limits, f.name)
        if value <= 0:
            raise fail(f"limits.{f.name}", f"must be positive, not {value}")
    if config.limits.max_header < 64:
        raise fail("limits.max_header", "must be at least 64")
