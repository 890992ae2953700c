"""Files: 1 GiB put and get, verified end to end, beside raw sendfile and nc + sha256sum.

Everything lives on tmpfs (/dev/shm) so the disk is not what is measured. Per round,
interleaved, each a fresh connection:

- raw: a spawned process ``socket.sendfile``s the file, we ``recv_into`` one reused
  1 MiB buffer and throw the bytes away (no framing, no hash: the ceiling);
- nc + sha256sum: what a person does for a verified copy without us: ``sha256sum`` the
  file on the sending side (while it is sent: the kindest order for the baseline),
  ``nc -l > copy`` / ``nc -N < file``, then ``sha256sum`` the copy and compare;
- ours: ``Client.put`` / ``Client.get`` to a sockhub server in its own process; each
  result's sha256 is checked against the file's, so every byte was verified.

Then 10,000 files of 4 KiB with ``sockhub put -r`` / ``get -r`` (the CLI, a fresh
process), beside ``tar | nc`` with ``sha256sum`` of every file on both ends.
Sizes and rounds: SOCKHUB_BENCH_FILE_MB, SOCKHUB_BENCH_ROUNDS, SOCKHUB_BENCH_SMALL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from sockhub import Client
from sockhub.server.users import UserStore

from ._procs import interleaved, median, ratio_median, report_port, serve_sockhub_with, spawn_server

MiB = 1024 * 1024
SIZE = int(os.environ.get("SOCKHUB_BENCH_FILE_MB", "1024")) * MiB
ROUNDS = int(os.environ.get("SOCKHUB_BENCH_ROUNDS", "5"))
SMALL = int(os.environ.get("SOCKHUB_BENCH_SMALL", "10000"))
SMALL_SIZE = 4096
TARGET_NC = 1.3
TARGET_RAW = 0.6
USER = "bench"


def _serve_sendfile(ready: Connection, path: str) -> None:
    """Process target: send the whole file to every connection, then close it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        report_port(ready, listener.getsockname()[1])
        while True:
            conn, _ = listener.accept()
            with conn, open(path, "rb") as fh:
                conn.sendfile(fh)


def raw_gbps(port: int, size: int) -> float:
    buf = memoryview(bytearray(MiB))
    start = time.perf_counter()
    got = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while n := sock.recv_into(buf):
            got += n
    assert got == size, got
    return size / (time.perf_counter() - start) / 1e9


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, check=True, text=True)
    return out.stdout.split()[0]


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (Linux: /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as fh:
        return any(fields[1] == want and fields[3] == "0A" for fields in map(str.split, fh))


def _nc_listener(port: int, **popen: object) -> subprocess.Popen[bytes]:
    """``nc -l`` on ``port``, returned once it listens."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
        ["nc", "-l", "127.0.0.1", str(port)], **popen
    )
    deadline = time.monotonic() + 10
    while not _listening(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("nc -l did not come up")
        time.sleep(0.002)
    return proc


def nc_gbps(source: Path, copy: Path, size: int, digest: str) -> float:
    """A person's verified copy: hash here, nc across, hash there, compare."""
    copy.unlink(missing_ok=True)
    port = _free_port()
    start = time.perf_counter()
    with open(copy, "wb") as out, open(source, "rb") as src:
        listener = _nc_listener(port, stdout=out)
        sender_hash = subprocess.Popen(["sha256sum", str(source)], stdout=subprocess.PIPE)
        subprocess.run(["nc", "-N", "127.0.0.1", str(port)], stdin=src, check=True)
        listener.wait()
    theirs = _sha256sum(copy)
    mine = sender_hash.communicate()[0].decode().split()[0]
    elapsed = time.perf_counter() - start
    assert mine == theirs == digest
    return size / elapsed / 1e9


def put_gbps(port: int, key: bytes, source: Path, size: int, digest: str) -> float:
    start = time.perf_counter()
    with Client.connect(f"127.0.0.1:{port}", user=USER, key=key) as c:
        result = c.put(source, "big.bin", overwrite=True)
    elapsed = time.perf_counter() - start
    assert result.sha256 == digest and result.sent == size, result
    return size / elapsed / 1e9


def get_gbps(port: int, key: bytes, copy: Path, size: int, digest: str) -> float:
    copy.unlink(missing_ok=True)
    start = time.perf_counter()
    with Client.connect(f"127.0.0.1:{port}", user=USER, key=key) as c:
        result = c.get("big.bin", copy)
    elapsed = time.perf_counter() - start
    assert result.sha256 == digest and result.sent == size, result
    return size / elapsed / 1e9


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


def _small_tree(top: Path, count: int) -> None:
    for i in range(count):
        folder = top / f"d{i // 100:03d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:05d}").write_bytes(os.urandom(SMALL_SIZE))


def _cli(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sockhub", *args, "--json"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def tar_nc_seconds(work: Path, tree: Path) -> float:
    """tar | nc across, sha256sum of every file on the sending side, checked on the other."""
    dest = work / "tar-copy"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    port = _free_port()
    start = time.perf_counter()
    manifest = work / "manifest"
    with open(manifest, "wb") as out:
        hashing = subprocess.Popen(
            "find . -type f -print0 | xargs -0 sha256sum", shell=True, cwd=tree.parent, stdout=out
        )
        listener = _nc_listener(port, stdout=subprocess.PIPE)
        untar = subprocess.Popen(["tar", "-x", "-C", str(dest)], stdin=listener.stdout)
        subprocess.run(
            f"tar -c -C {tree.parent} {tree.name} | nc -N 127.0.0.1 {port}", shell=True, check=True
        )
        listener.wait()
        untar.wait()
        hashing.wait()
    subprocess.run(["sha256sum", "--quiet", "-c", str(manifest)], cwd=dest, check=True)
    return time.perf_counter() - start


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="sockhub-bench-files-", dir=shm if shm.is_dir() else None))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _line(name: str, value: str, ratio: str = "", note: str = "") -> None:
    print(f"  {name:<46} {value:>12} {ratio:>8}  {note}")


def _verdict(ratio: float, target: float) -> str:
    return f"target >= {target:g}x: {'met' if ratio >= target else 'MISSED'}"


def big_file(work: Path, port: int, key: bytes) -> None:
    source, copy = work / "source.bin", work / "copy.bin"
    digest = _random_file(source, SIZE)
    with spawn_server(_serve_sendfile, str(source)) as (_, raw_port):
        put_bytes = {"ours": lambda: put_gbps(port, key, source, SIZE, digest)}
        get_bytes = {"ours": lambda: get_gbps(port, key, copy, SIZE, digest)}
        base: dict[str, Callable[[], float]] = {
            "raw": lambda: raw_gbps(raw_port, SIZE),
            "nc": lambda: nc_gbps(source, copy, SIZE, digest),
        }
        put_bytes["ours"]()  # the file must exist on the server before the first get
        runs = interleaved(
            {"put": put_bytes["ours"], "get": get_bytes["ours"], **base}, ROUNDS, pause=0.2
        )
    print(
        f"files: {SIZE / MiB:,.0f} MiB from tmpfs, GB/s, verified end to end "
        f"(median of {ROUNDS} interleaved rounds; ratios are medians of per-round ratios)"
    )
    _line("raw socket.sendfile -> recv_into (unverified)", f"{median(runs['raw']):.2f}", "1.00x")
    _line("nc + sha256sum on both ends", f"{median(runs['nc']):.2f}")
    for op in ("put", "get"):
        vs_raw = ratio_median(runs[op], runs["raw"])
        vs_nc = ratio_median(runs[op], runs["nc"])
        _line(
            f"sockhub {op} (Client.{op})",
            f"{median(runs[op]):.2f}",
            f"{vs_raw:.2f}x",
            f"vs raw, {_verdict(vs_raw, TARGET_RAW)}",
        )
        _line("", "", f"{vs_nc:.2f}x", f"vs nc + sha256sum, {_verdict(vs_nc, TARGET_NC)}")


def small_files(work: Path, port: int, key: bytes) -> None:
    tree = work / "small" / "tree"
    _small_tree(tree, SMALL)
    env = {
        **os.environ,
        "SOCKHUB_SERVER": f"127.0.0.1:{port}",
        "SOCKHUB_USER": USER,
        "SOCKHUB_KEY": __import__("base64").b64encode(key).decode(),
    }
    put = _cli(env, "put", "-r", str(tree), "small/")
    fetched = work / "fetched"
    fetched.mkdir()
    get = _cli(env, "get", "-r", "small/tree", f"{fetched}/")
    for name in ("d000/f00000", f"d{(SMALL - 1) // 100:03d}/f{SMALL - 1:05d}"):
        assert (fetched / "tree" / name).read_bytes() == (tree / name).read_bytes()
    tar = tar_nc_seconds(work, tree)
    print(f"files: {SMALL:,} files of {SMALL_SIZE // 1024} KiB, seconds (one round, CLI processes)")
    _line("tar | nc, sha256sum of every file both ends", f"{tar:.2f}", "1.00x")
    _line("sockhub put -r", f"{put:.2f}", f"{tar / put:.2f}x", f"{SMALL / put:,.0f} files/s")
    _line("sockhub get -r", f"{get:.2f}", f"{tar / get:.2f}x", f"{SMALL / get:,.0f} files/s")


def main() -> None:
    with _workdir() as work:
        data = work / "data"
        key = UserStore(data).add(USER, ("files",))
        flags = {"host": "127.0.0.1", "port": 0, "data": str(data), "udp": False}
        with spawn_server(serve_sockhub_with, flags) as (_, port):
            big_file(work, port, key)
            small_files(work, port, key)


if __name__ == "__main__":
    main()
