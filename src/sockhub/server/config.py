"""Server configuration: flags, then a TOML file, then ``SOCKHUB_*`` variables, then defaults.

Precedence is DESIGN.md's: a flag beats the config file, which beats the environment.
Unknown keys are an error that names them, so a typo never silently keeps a default.
"""

from __future__ import annotations

import dataclasses
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
    "Config",
    "ConfigError",
    "load_config",
    "settings_of",
]

DEFAULT_PORT = 9696
DEFAULT_WEB_PORT = 9697
CLASSIC_SERVICES = ("echo", "daytime", "time", "sntp")
BROKER_SCHEMES = ("redis://", "unix://")
"""What a ``broker`` URL may start with (docs/scale-out.md)."""


class ConfigError(ValueError):
    """A configuration value or key that cannot be used; the message says which."""


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


def _convert(name: str, kind: Any, value: Any) -> Any:
    """``value`` (from TOML, the environment or a flag) as the field's type."""
    kind = str(kind)
    try:
        if kind.startswith("bool"):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind.startswith("Path"):
            return None if value in (None, "") else Path(str(value)).expanduser()
        if kind.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot use {value!r} as {kind}") from exc


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    top: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for name, f in _FIELDS.items():
        raw = env.get(f"SOCKHUB_{name.upper()}")
        if raw is not None:
            top[name] = _convert(f"SOCKHUB_{name.upper()}", f.type, raw)
    for name, f in _LIMIT_FIELDS.items():
        raw = env.get(f"SOCKHUB_LIMIT_{name.upper()}")
        if raw is not None:
            limits[name] = _convert(f"SOCKHUB_LIMIT_{name.upper()}", f.type, raw)
    return top, limits


def _from_toml(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    raw_limits = doc.pop("limits", {})
    unknown = sorted(set(doc) - set(_FIELDS)) + [
        f"limits.{k}" for k in sorted(set(raw_limits) - set(_LIMIT_FIELDS))
    ]
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}")
    top = {k: _convert(k, _FIELDS[k].type, v) for k, v in doc.items()}
    limits = {k: _convert(f"limits.{k}", _LIMIT_FIELDS[k].type, v) for k, v in raw_limits.items()}
    return top, limits


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
    top, limits = _from_env(env)
    file = config_file or (Path(env["SOCKHUB_CONFIG"]) if env.get("SOCKHUB_CONFIG") else None)
    if file is not None:
        file_top, file_limits = _from_toml(file)
        top.update(file_top)
        limits.update(file_limits)
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key in _FIELDS:
            top[key] = _convert(key, _FIELDS[key].type, value)
        elif key in _LIMIT_FIELDS:
            limits[key] = _convert(key, _LIMIT_FIELDS[key].type, value)
        else:
            raise ConfigError(f"unknown setting {key}")
    top.setdefault("data", default_data_folder(env))
    config = Config(**top, limits=Limits(**limits))
    _check(config)
    return config


def _check(config: Config) -> None:
    for name in ("port", *(f"classic_{s}_port" for s in CLASSIC_SERVICES)):
        port = getattr(config, name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name} {port} is not between 0 and 65535")
    unknown = set(config.classic_services) - set(CLASSIC_SERVICES)
    if unknown:
        raise ConfigError(
            f"classic_services: unknown {', '.join(sorted(unknown))} "
            f"(choose from {', '.join(CLASSIC_SERVICES)})"
        )
    leaked = _NEVER_ANONYMOUS & set(config.anonymous_grants)
    if leaked:
        raise ConfigError(f"anonymous_grants may not include {', '.join(sorted(leaked))}")
    if config.broker != "memory" and not config.broker.startswith(BROKER_SCHEMES):
        raise ConfigError(f"broker {config.broker!r}: use 'memory' or a redis://HOST:PORT URL")
    if config.workers < 1:
        raise ConfigError(f"workers must be at least 1, not {config.workers}")
    if config.workers > 1 and config.broker == "memory":
        raise ConfigError(
            "workers > 1 needs a broker every worker shares (--broker redis://HOST:PORT)"
        )
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("tls_cert and tls_key go together")
    for f in dataclasses.fields(Limits):
        value = getattr(config.limits, f.name)
        if value <= 0:
            raise ConfigError(f"limits.{f.name} must be positive, not {value}")
    if config.limits.max_header < 64:
        raise ConfigError("limits.max_header must be at least 64")
