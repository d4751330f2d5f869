"""Client.stream's two transports: the stdlib one that reads the body straight from the socket
into the caller's buffers, and httpx (taken when a proxy is configured). Both must send the same
request, honour retries, timeouts and the token, and fail the same way: the service's error
envelope, a body cut off mid-tensor, a stalled server.

The real server covers the ordinary path, its error envelope and a body it cuts off itself
(idle timeout); a scripted local HTTP server covers what the real one cannot be made to do on
demand (503 with and without Retry-After, a short Content-Length body, a stall, a proxy).
"""

import http.server
import json
import struct
import threading
import time

import httpx
import numpy as np
import pytest
from safetensors.numpy import load

from paraminit import Client, ParaminitError, read_safetensors

from conftest import start_server, stop_server

MLP = {"seed": 7, "layers": [{"type": "dense", "in_features": 10, "out_features": 6},
                             {"type": "relu"}, {"type": "dense", "out_features": 3}]}

TRANSPORTS = ["direct", "httpx"]


def _client(url, transport, **kw):
    c = Client(url, **kw)
    if transport == "httpx":
        c._direct = None  # what a configured proxy selects (see test_a_proxy_selects_httpx)
    else:
        assert c._direct is not None, "a plain http URL must take the direct path"
    return c


def _collect(got):
    def sink(info):
        arr = np.empty(info.shape, dtype=info.numpy_dtype())
        got[info.name] = arr
        return memoryview(arr).cast("B")
    return sink


def _file(tensors):
    """A safetensors file of float32 arrays, built here (the scripted server's body)."""
    header, off, data = {}, 0, b""
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        data += b
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


# --- against the real server ---------------------------------------------------------------------


def test_the_direct_path_does_not_touch_httpx(server_url, monkeypatch):
    with Client(server_url) as c:
        want = load(c.init_safetensors(MLP))

    def refuse(*a, **k):
        raise AssertionError("Client.stream went through httpx")

    monkeypatch.setattr(httpx.Client, "send", refuse)
    got = {}
    with Client(server_url) as c:
        assert c.stream(MLP, _collect(got))["format"] == "pt"
    assert set(got) == set(want)
    for k in want:
        assert got[k].tobytes() == want[k].tobytes(), k


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_both_transports_give_the_same_bytes_and_skip_tensors(server_url, transport):
    req = {"seed": 3, "tensors": [{"name": "a", "shape": [700, 1000], "init": "normal"},
                                  {"name": "b", "shape": [3, 5], "init": "ones"},
                                  {"name": "c", "shape": [2000, 300], "init": "uniform"}]}
    with Client(server_url) as c:
        want = load(c.init_safetensors(req))
    got = {}
    collect = _collect(got)
    with _client(server_url, transport) as c:
        # "a" (2.8 MB) is dropped: read through the bounded scratch buffer, not stored.
        c.stream(req, lambda info: None if info.name == "a" else collect(info))
    assert set(got) == {"b", "c"}
    for k in got:
        assert got[k].tobytes() == want[k].tobytes(), k


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_error_envelope_is_raised_the_same_on_both_paths(server_url, transport):
    bad = {"seed": 1, "layers": [{"type": "dense", "in_features": 3, "out_features": 0}]}
    with _client(server_url, transport) as c:
        with pytest.raises(ParaminitError) as e:
            c.stream(bad, lambda info: None)
    assert (e.value.status, e.value.code, e.value.path) == (422, "invalid_value",
                                                            "layers[0].out_features")


@pytest.fixture(scope="module")
def impatient_server():
    """A real server that cuts off a client reading nothing for 1 s."""
    proc, url = start_server({"PARAMINIT_IDLE_TIMEOUT_SECS": "1"})
    yield url
    stop_server(proc)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_the_server_cuts_off_mid_tensor_raises(impatient_server, transport):
    # 64 MB, far more than the socket buffers and the server's channel hold: while the sink
    # sleeps, the server's send waits past its idle timeout and it ends the body early.
    req = {"seed": 1, "tensors": [{"name": "w", "shape": [4096, 4096], "init": "normal"}]}
    buf = np.zeros((4096, 4096), np.float32)

    def slow(info):
        time.sleep(3)
        return memoryview(buf).cast("B")

    with _client(impatient_server, transport) as c:
        with pytest.raises(ParaminitError, match="cut off"):
            c.stream(req, slow)
    assert buf[:16].any(), "the part before the cut arrived"


# --- against a scripted server -------------------------------------------------------------------


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next step of ``server.script``; records what it was sent."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        self.server.seen.append((self.path, dict(self.headers), body))
        step = self.server.script.pop(0)
        status, headers, payload = step[:3]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if len(step) > 3 and step[3] == "stall":
            self.wfile.write(payload[:100])
            self.wfile.flush()
            time.sleep(3)
            return
        self.wfile.write(payload)
        self.wfile.flush()
        if len(step) > 3 and step[3] == "close":
            self.close_connection = True


@pytest.fixture
def scripted():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.script, srv.seen = [], []
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


BUSY = json.dumps({"error": {"code": "busy", "message": "all generation slots are in use",
                             "path": None}}).encode()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retry_after_is_honoured_and_the_token_sent_on_every_attempt(scripted, transport):
    srv, url = scripted
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    srv.script = [(503, {"Retry-After": "0"}, BUSY), (503, {"Retry-After": "0"}, BUSY),
                  (200, {}, _file({"w": w}))]
    got = {}
    with _client(url, transport, token="s3cret") as c:
        c.stream(MLP, _collect(got))
    assert np.array_equal(got["w"], w)
    assert len(srv.seen) == 3
    for path, headers, body in srv.seen:
        assert path == "/v1/init?format=safetensors"
        assert headers["Authorization"] == "Bearer s3cret"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == MLP


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_503_without_retry_after_or_past_the_retries_is_the_envelope(scripted, transport):
    srv, url = scripted
    srv.script = [(503, {}, BUSY)]
    with _client(url, transport) as c:
        with pytest.raises(ParaminitError) as e:
            c.stream(MLP, lambda info: None)
    assert (e.value.status, e.value.code) == (503, "busy")
    srv.script = [(503, {"Retry-After": "0"}, BUSY)] * 3
    with _client(url, transport, retries=2) as c:
        with pytest.raises(ParaminitError) as e:
            c.stream(MLP, lambda info: None)
    assert (e.value.status, e.value.code) == (503, "busy") and len(srv.seen) == 4


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_shorter_than_its_content_length_raises(scripted, transport):
    srv, url = scripted
    body = _file({"w": np.ones((64, 64), np.float32)})
    srv.script = [(200, {"Content-Length": str(len(body))}, body[:-1000], "close")]
    with _client(url, transport) as c:
        with pytest.raises(ParaminitError, match="cut off"):
            c.stream(MLP, _collect({}))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_read_timeout_is_honoured(scripted, transport):
    srv, url = scripted
    body = _file({"w": np.ones((64, 64), np.float32)})
    srv.script = [(200, {}, body, "stall")]
    t0 = time.monotonic()
    with _client(url, transport, timeout=0.5) as c:
        with pytest.raises(ParaminitError, match="cut off"):
            c.stream(MLP, _collect({}))
    assert time.monotonic() - t0 < 2.5


def test_a_connection_refused_is_a_paraminit_error():
    import socket

    with socket.socket() as s:  # a port nothing listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as c:
        with pytest.raises(ParaminitError, match="failed"):
            c.stream(MLP, lambda info: None)


def test_a_proxy_selects_httpx_and_is_used(scripted, monkeypatch):
    srv, proxy = scripted
    w = np.full((2, 2), 5, np.float32)
    srv.script = [(200, {}, _file({"w": w}))]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    got = {}
    with Client("http://paraminit.invalid:8080/prefix") as c:
        assert c._direct is None
        c.stream(MLP, _collect(got))
    assert np.array_equal(got["w"], w)
    # The proxy was asked for the absolute URL: httpx, not the direct path, carried it.
    assert srv.seen[0][0] == "http://paraminit.invalid:8080/prefix/v1/init?format=safetensors"


def test_a_path_prefix_in_the_url_is_kept_on_the_direct_path(scripted):
    srv, url = scripted
    srv.script = [(200, {}, _file({"w": np.zeros(1, np.float32)}))]
    with Client(url + "/prefix/") as c:
        c.stream(MLP, _collect({}))
    assert srv.seen[0][0] == "/prefix/v1/init?format=safetensors"


def test_read_safetensors_reads_a_file_object_in_place(tmp_path):
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.full(5, -1, np.float32)
    path = tmp_path / "m.safetensors"
    path.write_bytes(_file({"a": a, "b": b}))
    got = {}
    with open(path, "rb") as f:
        read_safetensors(f, _collect(got))
    assert np.array_equal(got["a"], a) and np.array_equal(got["b"], b)
    path.write_bytes(path.read_bytes()[:-4])
    with open(path, "rb") as f, pytest.raises(ValueError, match="ended 4 bytes early"):
        read_safetensors(f, _collect({}))
    with open(path, "rb") as f, pytest.raises(ValueError, match="ended 4 bytes early"):
        read_safetensors(f, lambda info: None)  # the scratch path too
