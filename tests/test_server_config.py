"""Configuration: flags over a TOML file over SOCKHUB_* variables over defaults."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockhub.server.config import NOT_BUILT, Config, ConfigError, load_config
from sockhub.server.limits import Limits

from .conftest import RawPeer, RunningServer


def test_precedence(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('port = 7000\nhost = "0.0.0.0"\n[limits]\nidle_timeout = 60\nmax_body = 2048\n')
    env = {
        "SOCKHUB_PORT": "6000",
        "SOCKHUB_DATA": "/tmp/x",
        "SOCKHUB_LIMIT_MAX_BODY": "4096",
        "SOCKHUB_LIMIT_SEND_TIMEOUT": "5",
    }
    cfg = load_config({"port": 8000}, conf, env)
    assert cfg.port == 8000  # flag
    assert cfg.host == "0.0.0.0"  # file
    assert str(cfg.data) == "/tmp/x"  # env
    assert cfg.limits.idle_timeout == 60 and cfg.limits.max_body == 2048  # file over env
    assert cfg.limits.send_timeout == 5  # env
    assert cfg.limits.handshake_timeout == Limits().handshake_timeout  # default


@pytest.mark.parametrize(
    ("flags", "text", "message"),
    [
        ({}, "nope = 1", "unknown key(s) nope"),
        ({}, "[limits]\nmax_bodyy = 1", "limits.max_bodyy"),
        ({}, "port = 'x'", "port"),
        ({}, "port = 70000", "70000"),
        ({}, "anonymous_grants = ['echo', 'exec']", "exec"),
        ({}, "[limits]\nmax_header = 10", "max_header"),
        ({}, "[limits]\nidle_timeout = 0", "idle_timeout"),
        ({}, "this is not toml", "not valid TOML"),
        ({"tls_cert": "/a.pem"}, "", "go together"),
        ({"no_such_flag": 1}, "", "unknown setting"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, flags: dict, text: str, message: str) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(flags, conf, {})


def test_bool_and_tuple_from_env() -> None:
    cfg = load_config({}, None, {"SOCKHUB_UDP": "off", "SOCKHUB_ANONYMOUS_GRANTS": "echo, time"})
    assert cfg.udp is False and cfg.anonymous_grants == ("echo", "time")
    with pytest.raises(ConfigError):
        load_config({}, None, {"SOCKHUB_UDP": "maybe"})


def test_logs_escape_client_text(srv: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.server")
    peer = RawPeer(srv.port)
    peer.request(
        {
            "op": "auth",
            "id": 1,
            "method": "hmac-sha256",
            "user": "\x1b[31mevil\nFAKE LOG LINE",
            "cnonce": "A" * 43 + "=",
            "mac": "00" * 32,
        }
    )
    assert peer.frame().header["code"] == "auth.failed"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "\\x1b[31mevil\\x0aFAKE LOG LINE" in text
    assert "\x1b" not in text and "\nFAKE" not in text


SERVE = [sys.executable, "-m", "sockhub", "serve", "--port", "0", "--no-udp"]


def serve_refusal(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the real ``sockhub serve``; it must refuse at once with one line, exit 2."""
    result = subprocess.run(
        [*SERVE, "--data", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockhub: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SOCKHUB_BROKER": "memcached://127.0.0.1:11211"}, "use 'memory' or a redis://"),
        ({"SOCKHUB_WORKERS": "4"}, "workers > 1 needs a broker"),
    ],
)
def test_serve_checks_broker_and_workers_from_the_environment(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    assert says in serve_refusal(tmp_path, env=env)


def test_serve_checks_broker_and_workers_from_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    for text, says in (("workers = 0", "at least 1"), ('broker = "x"', "use 'memory'")):
        conf.write_text(text)
        assert says in serve_refusal(tmp_path, "--config", str(conf))


def test_settings_at_their_built_values_are_accepted(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('broker = "memory"\nworkers = 1\n')
    cfg = load_config({}, conf, {})
    assert (cfg.broker, cfg.workers) == ("memory", 1)
    for key, rule in NOT_BUILT.items():  # the one table a feature's branch edits
        assert rule.todo and key in {f.name for f in dataclasses.fields(Config)}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[limits]\nmax_body = 1e400", "limits.max_body"),  # inf for an int
        ("[limits]\nidle_timeout = nan", "limits.idle_timeout"),
        ("[limits]\nsend_timeout = inf", "limits.send_timeout"),
        ("limits = 5", "limits"),
        ("host = 5", "host"),
        ('data = ["a"]', "data"),
        ("udp = 1", "udp"),
        ('log_level = "loud"', "log_level"),
    ],
)
def test_serve_refuses_a_bad_config_file_value_in_one_line(
    tmp_path: Path, text: str, named: str
) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(text + "\n")
    assert named in serve_refusal(tmp_path, "--config", str(conf))


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--limit", "idle_timeout=nan"], {}, "idle_timeout"),
        (["--limit", "send_timeout=inf"], {}, "send_timeout"),
        (["--limit", "max_body=1e400"], {}, "max_body"),
        (["--limit", "max_body=1.5"], {}, "max_body"),
        (["--limit", "port=1"], {}, "limits.port"),  # --limit sets limits only
        ([], {"SOCKHUB_LOG_LEVEL": "loud"}, "SOCKHUB_LOG_LEVEL"),
        ([], {"SOCKHUB_LIMIT_MAX_INFLIGHT": "-3"}, "SOCKHUB_LIMIT_MAX_INFLIGHT"),
        ([], {"SOCKHUB_LIMIT_SEND_TIMEOUT": "1e999"}, "SOCKHUB_LIMIT_SEND_TIMEOUT"),
        ([], {"SOCKHUB_CLASSIC_ECHO_PORT": "99999"}, "SOCKHUB_CLASSIC_ECHO_PORT"),
    ],
)
def test_serve_refuses_a_bad_flag_or_variable_in_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    assert named in serve_refusal(tmp_path, *args, env=env)
