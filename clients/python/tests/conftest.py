"""Shared fixtures: a real paraminit server (the release binary) on a free loopback port.

The binary is ``$PARAMINIT_BIN`` or ``target/release/paraminit`` at the repository root.
"""

import os
import pathlib
import socket
import subprocess
import time

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(extra_env=None):
    binary = os.environ.get("PARAMINIT_BIN", str(ROOT / "target" / "release" / "paraminit"))
    if not pathlib.Path(binary).exists():
        pytest.fail(f"no server binary at {binary}: run `cargo build --release` or set PARAMINIT_BIN")
    port = _free_port()
    env = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{port}", PARAMINIT_SHUTDOWN_GRACE_SECS="5",
               RUST_LOG="warn")
    env.pop("PARAMINIT_API_TOKEN", None)
    env.update(extra_env or {})
    proc = subprocess.Popen([binary], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("the paraminit server did not start")
        time.sleep(0.05)


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server_url():
    """The URL of a paraminit server shared by the whole test session."""
    proc, url = start_server()
    yield url
    stop_server(proc)
