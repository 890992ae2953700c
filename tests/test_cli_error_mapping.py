"""The client's exceptions meet the CLI's one error style with the README's exit codes.

``ConnectError`` and ``ConnectionBroken`` are ``ConnectionError`` and ``RequestTimeout``
is ``TimeoutError``: all three are ``OSError``, so these check that none of them is
reported as a local file problem.
"""

from __future__ import annotations

import argparse
import json

import pytest

from sockhub.cli.common import fail
from sockhub.client import (
    ConnectError,
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    NotSockhubServer,
    QueueFull,
    RemoteProtocolError,
    RequestTimeout,
)


@pytest.mark.parametrize(
    ("exc", "exit_code", "error"),
    [
        (NotSockhubServer("127.0.0.1:7 is not a sockhub server: it sent text"), 3, "not_sockhub"),
        (ConnectError("127.0.0.1:1: connection refused"), 3, "connect"),
        (ConnectionBroken("the server ended the connection"), 3, "closed"),
        (ConnectionClosed("the connection is closed"), 3, "closed"),
        (RequestTimeout("no reply to echo within 5 s"), 1, "timeout"),
        (QueueFull("exec.run: 256 frames not taken"), 1, "QueueFull"),
        (LocalProtocolError("a body over max_body"), 1, "LocalProtocolError"),
        (RemoteProtocolError("a reply to no request"), 1, "frame.bad"),
        (FileNotFoundError(2, "No such file or directory", "x.txt"), 1, "local"),
    ],
)
def test_each_failure_has_its_exit_code_and_error(
    exc: BaseException, exit_code: int, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fail(argparse.Namespace(json=True, server="127.0.0.1:9696"), exc) == exit_code
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == error
    assert err.startswith("sockhub: ") and err.count("\n") == 1
