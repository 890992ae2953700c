"""Configuration: flags over a TOML file over SOCKHUB_* variables over defaults."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sockhub.server.config import ConfigError, load_config
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
