"""The chat service's and chat clients' wire tests again, with the Redis broker.

Every test of tests/test_chat_service.py, tests/test_chat_client.py,
tests/test_chat_unannounced.py and tests/test_chat_history.py that runs on the ``srv`` fixture is collected here too,
with ``srv`` overridden: a server whose broker is a private redis-server (emptied before
each test). The tests are the same objects, so the two brokers answer to one suite.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import test_chat_client, test_chat_history, test_chat_service, test_chat_unannounced
from .conftest import RunningServer, running_server
from .redis_support import RedisServer


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def srv(tmp_path: Path, shared_redis: RedisServer) -> Iterator[RunningServer]:
    assert shared_redis.command("FLUSHALL") == b"+OK\r\n"
    with running_server(tmp_path / "data", broker=shared_redis.url) as server:
        yield server


for _module in (test_chat_service, test_chat_client, test_chat_unannounced, test_chat_history):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and "srv" in inspect.signature(_test).parameters:
            globals()[_name] = _test
