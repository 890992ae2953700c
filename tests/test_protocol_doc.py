"""PROTOCOL.md says what the server does: its examples and stated formats, checked live."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
from pathlib import Path

from .conftest import RawPeer, RunningServer, running_server

PROTOCOL = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text()


def test_hello_example_lists_the_advertised_limits(srv: RunningServer) -> None:
    example = re.search(r'`(\{"op":"hello".*?\})`', PROTOCOL)
    assert example is not None
    documented = json.loads(example.group(1))
    hello = RawPeer(srv.port).hello.header
    assert set(documented) == set(hello)
    assert documented["limits"] == hello["limits"]  # the defaults, key for key


def test_fingerprint_is_colon_separated_upper_hex_sha256_of_the_der(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tls=True) as srv:
        assert srv.server is not None
        printed = srv.server.listening.tls_fingerprint
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", srv.port)) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    assert der is not None and printed is not None
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", printed)
    assert printed.replace(":", "") == hashlib.sha256(der).hexdigest().upper()
    assert "upper-case hex byte pairs separated by colons" in PROTOCOL


def test_an_ill_typed_op_is_a_bad_request(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    for op in (5, ["echo"], {"op": "echo"}, None):
        peer.request({"op": op, "id": 3})
        error = peer.frame().header
        assert (error["code"], error["re"], error["fatal"]) == ("bad.request", 3, False)
    peer.request({"id": 4})  # no op at all
    assert peer.frame().header["code"] == "bad.request"
    peer.request({"op": 5})  # no id: the error still comes, without re
    error = peer.frame().header
    assert error["code"] == "bad.request" and "re" not in error
    peer.request({"op": "echo", "id": 5})
    assert peer.frame().header == {"op": "echo", "re": 5}
