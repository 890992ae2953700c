"""``sockhub serve``: run the server; with no flags, a safe local server that says how to use it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .._version import __version__
from ..server import Config, ConfigError, Listening, Server, load_config
from ..server.config import CLASSIC_SERVICES
from ..server.datadir import DataInUse, default_data_folder, lock_data_folder, unlock_data_folder
from ..server.limits import Limits
from ..server.loop import run
from ..server.workers import reserve_port, run_workers
from ..services import default_services
from ..services.chat.broker import BrokerUnreachable
from ..services.classic import ClassicService
from ..web import WebListener
from .common import EXIT_CONNECT, EXIT_USAGE, CliError, command, examples
from .environment import parse_size, unknown_variables

__all__ = ["banner", "limit_flags", "register"]


def banner(
    config: Config, listening: Listening, services: list[str], page: str | None = None
) -> str:
    lines = [f"sockhub {__version__} serving {', '.join(services)}"]
    for host, port in listening.tcp:
        lines.append(f"  {'tls' if config.tls else 'tcp'}  {host}:{port}")
    for host, port in listening.udp:
        lines.append(f"  udp  {host}:{port}  (echo, time)")
    if listening.unix is not None:
        lines.append(f"  unix {listening.unix}")
    if page is not None:
        lines.append(f"  web  {page}  (open it in a browser)")
    lines.append(f"  data {config.data.resolve()}")
    anon = ", ".join(config.anonymous_grants) or "nothing"
    lines.append(f"  anonymous clients may use: {anon}")
    if listening.tls_fingerprint:
        made = " (new self-signed certificate)" if listening.tls_new else ""
        lines.append(f"  TLS fingerprint SHA256 {listening.tls_fingerprint}{made}")
    host, port = listening.tcp[0] if listening.tcp else ("127.0.0.1", config.port)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    tls = " --tls" if config.tls else ""
    data = _data_flag(config.data)
    lines += [
        "try, from another terminal:",
        f"  sockhub echo -s {target}{tls} hello",
        f"  sockhub time -s {target}{tls}",
        f"  sockhub user add NAME --grant chat,files{data} --key-out NAME.key",
        f"  sockhub chat -s {target}{tls} --user NAME --key-file NAME.key",
        "stop with Ctrl-C (clients are told the server is shutting down)",
    ]
    return "\n".join(lines)


def _data_flag(folder: Path) -> str:
    """`` --data DIR`` for the hints, unless ``sockhub user`` would find the folder by itself."""
    if folder.resolve() == default_data_folder().resolve():
        return ""
    return f" --data {shlex.quote(str(folder.resolve()))}"


async def _serve(config: Config, *, quiet: bool = False) -> None:
    services = default_services(config)
    server = Server(config, services)
    web = WebListener(server) if config.web else None
    port = config.port
    try:
        listening = await server.start()
        if web is not None:
            port = config.web_port
            await web.start()
    except BrokerUnreachable as exc:
        if web is not None:
            await web.close()
        await server.shutdown()
        raise CliError(str(exc), EXIT_CONNECT) from exc
    except ConfigError as exc:  # found only when a service starts (the broker URL)
        await server.shutdown()
        raise CliError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        if web is not None:
            await web.close()
        await server.shutdown()
        raise CliError(
            f"cannot listen on {config.host}:{port}: {exc.strerror or exc}", EXIT_CONNECT
        ) from exc
    if not quiet:
        page = web.url if web is not None else None
        print(banner(config, listening, server.ctx.services, page), flush=True)
        if config.workers > 1:
            print(f"  workers {config.workers} on this port (SO_REUSEPORT)", flush=True)
    for service in services:
        if isinstance(service, ClassicService) and not quiet:
            print("\n".join(service.describe()), flush=True)
    try:
        await server.serve_forever()
    finally:
        if web is not None:
            await web.close()


def _serve_workers(config: Config) -> int:
    """Check the broker once, hold the port, then fork the workers (docs/scale-out.md)."""
    from ..services.chat.redis_broker import probe  # redis is an optional dependency

    try:
        probe(config.broker)
    except BrokerUnreachable as exc:
        raise CliError(str(exc), EXIT_CONNECT) from exc
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    try:
        held, port = reserve_port(config.host, config.port)
    except OSError as exc:
        raise CliError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", EXIT_CONNECT
        ) from exc

    def worker(index: int) -> int:
        first = index == 0
        own = dataclasses.replace(
            config,
            port=port,
            unix=config.unix if first else None,
            classic=config.classic and first,
            web=config.web and first,
        )
        try:
            run(_serve(own, quiet=not first))
        except CliError as exc:
            print(f"sockhub serve: worker {index}: {exc}", file=sys.stderr, flush=True)
            return exc.code
        return 0

    with held:
        return run_workers(config.workers, worker)


_INT_LIMITS = frozenset(f.name for f in dataclasses.fields(Limits) if str(f.type) == "int")


def limit_flags(pairs: list[str]) -> dict[str, Any]:
    """``--limit NAME=VALUE``; a size may carry a unit (``file_quota=1G``, ``max_body=4MiB``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--limit wants NAME=VALUE, not {pair!r}", EXIT_USAGE)
        key = name.strip().replace("-", "_")
        out[key] = parse_size(value) if key in _INT_LIMITS else value.strip()
    return out


def _classic_flags(args: argparse.Namespace) -> dict[str, Any]:
    """--classic turns every classic service on; naming some or giving a port implies it."""
    ports = {f"classic_{s}_port": getattr(args, f"classic_{s}_port") for s in CLASSIC_SERVICES}
    chosen = args.classic or args.classic_services or any(p is not None for p in ports.values())
    return {"classic": True if chosen else None, "classic_services": args.classic_services, **ports}


@command
def _run(args: argparse.Namespace) -> int:
    unknown = unknown_variables(os.environ)
    if unknown:
        raise CliError(
            f"unknown variable(s) {', '.join(unknown)}: unset them or fix the name "
            "(docs/limits.md lists every SOCKHUB_LIMIT_*)",
            EXIT_USAGE,
        )
    flags: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "unix": args.unix,
        "data": args.data,
        "tls": True if args.tls or args.tls_cert or args.tls_key else None,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "udp": False if args.no_udp else None,
        "web": False if args.no_web else None,
        # a server told to pick its port (tests, scripts) picks the web port too
        "web_port": 0 if args.web_port is None and args.port == 0 else args.web_port,
        "web_hosts": args.web_hosts,
        "web_origins": args.web_origins,
        "anonymous_grants": args.anonymous,
        "log_level": args.log_level,
        "exec": True if args.exec else None,
        "exec_root": args.exec_root,
        "exec_unsandboxed": True if args.exec_unsandboxed else None,
        "broker": args.broker,
        "workers": args.workers,
        **_classic_flags(args),
        **{f"limits.{name}": value for name, value in limit_flags(args.limit).items()},
    }
    try:
        config = load_config(flags, Path(args.config) if args.config else None)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise CliError(
            f"log_level {config.log_level!r} is not one of debug, info, warning, error", EXIT_USAGE
        )
    who = "[%(process)d]" if config.workers > 1 else ""  # which worker wrote the line
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s{who}: %(message)s",
        stream=sys.stderr,
    )
    try:
        # the workers inherit the lock's descriptor: N workers of this server share the
        # folder (one lock, held until the last of them ends); another server is refused
        lock = lock_data_folder(config.data)
    except DataInUse as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot use data folder {config.data}: {exc.strerror or exc}") from exc
    try:
        if config.workers > 1:
            return _serve_workers(config)
        run(_serve(config))
    finally:
        unlock_data_folder(lock)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run a sockhub server",
        description=(
            "Run the server. With no flags: TCP and UDP on 127.0.0.1:9696, data in "
            "$SOCKHUB_DATA or else ~/.local/share/sockhub ($XDG_DATA_HOME/sockhub; one "
            "server per folder), echo+time+chat open to anonymous clients, files for users "
            "with the grant, exec off. Settings come from flags, then --config FILE "
            "(TOML), then SOCKHUB_* variables (SOCKHUB_PORT, SOCKHUB_LIMIT_MAX_BODY...)."
        ),
        **examples("""
  sockhub serve                                  # local only, prints how to connect
  sockhub serve --host 0.0.0.0 --tls             # LAN, self-signed cert, fingerprint printed
  sockhub serve --unix /tmp/sockhub.sock         # also on a UNIX socket
  sockhub serve --web-port 8080                  # the browser page on port 8080
  sockhub serve --limit idle_timeout=60 --limit max_connections=500
  sockhub serve --config sockhub.toml            # [limits] table for the limits
  sockhub serve --exec --limit exec_timeout_max=600   # remote exec for users granted it
  sockhub serve --classic                        # + echo/daytime/time/SNTP on 10007/10013/10037/10123
  rdate -n -p -o 10123 127.0.0.1                 #   ... then ask it the time over SNTP
  sockhub serve --broker redis://127.0.0.1:6379 --workers 2   # 2 processes share rooms (docs/scale-out.md)
"""),
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 or :: for LAN)")
    p.add_argument("--port", "-p", type=int, help="TCP and UDP port (default 9696; 0 picks one)")
    p.add_argument("--unix", metavar="PATH", help="also listen on a UNIX-domain socket")
    p.add_argument(
        "--data",
        metavar="DIR",
        help="data folder (default $SOCKHUB_DATA, else ~/.local/share/sockhub)",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (or SOCKHUB_CONFIG)")
    p.add_argument(
        "--tls", action="store_true", help="TLS on the TCP port (self-signed if no cert)"
    )
    p.add_argument(
        "--tls-cert", metavar="PEM", help="certificate chain (with --tls-key; implies --tls)"
    )
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    p.add_argument("--no-udp", action="store_true", help="do not serve echo/time over UDP")
    p.add_argument(
        "--web-port",
        type=int,
        metavar="PORT",
        help="the browser page's port (default 9697; picked with --port 0)",
    )
    p.add_argument("--no-web", action="store_true", help="do not serve the browser page")
    p.add_argument(
        "--web-hosts",
        metavar="NAMES",
        help="host names the page may be reached by, besides IP addresses and localhost",
    )
    p.add_argument(
        "--web-origins",
        metavar="ORIGINS",
        help="other pages (https://name:port) that may open the WebSocket (docs/web.md)",
    )
    p.add_argument(
        "--anonymous",
        metavar="GRANTS",
        help="what clients without a user may use (default echo,time,chat)",
    )
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one limit (see docs/limits.md); sizes may say 64K, 10M, 1G",
    )
    p.add_argument(
        "--classic",
        action="store_true",
        help="also serve RFC echo/daytime/time and SNTP for rdate, nc, socat (docs/classic.md)",
    )
    p.add_argument("--classic-services", metavar="LIST", help="only these: echo,daytime,time,sntp")
    for name in CLASSIC_SERVICES:
        p.add_argument(
            f"--classic-{name}-port", type=int, metavar="PORT", help="default: standard + 10000"
        )
    p.add_argument(
        "--exec",
        action="store_true",
        help="enable remote exec for users with the exec grant (docs/exec.md)",
    )
    p.add_argument("--exec-root", metavar="DIR", help="where commands run (default DATA/exec)")
    p.add_argument(
        "--exec-unsandboxed",
        action="store_true",
        help="run commands as the server's user with no sandbox (when bwrap cannot be used)",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="chat broker: memory (default, this process) or redis://[:PASSWORD@]HOST:PORT[/DB] "
        "shared by every process and host using it (or SOCKHUB_BROKER)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="N server processes on one port (needs --broker redis://...; default 1)",
    )
    p.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    p.set_defaults(func=_run)
