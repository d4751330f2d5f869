#!/usr/bin/env python3
"""Load and fault test of the release server on loopback (issue 7). Bounded in count and time.

Starts `paraminit` with 2 job slots, short timeouts and small buffers, then checks and reports:
  1. overload: while both slots stream to slow readers, further generations get 503 +
     Retry-After, and /v1/plan, /healthz and /metrics stay fast (latencies reported);
  2. a burst of small generations from 8 threads: statuses and latencies;
  3. a client that stops reading is cut off after the idle timeout and its slot frees;
  4. a client that disconnects mid-stream frees its slot;
  5. a request body that never completes gets 408;
  6. a header flood is refused and the server keeps serving;
  7. SIGTERM mid-stream: the stream still completes, then the process exits 0;
and the server's peak RSS (VmHWM). Prints a summary and `load: N passed, M failed`.

usage: load_test.py [path/to/paraminit]
"""
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "paraminit")
SEED_MLP = open(os.path.join(ROOT, "examples", "seed_mlp.json"), "rb").read()
BIG = json.dumps({"seed": 1, "tensors": [{"name": "w", "shape": [400_000_000], "init": "normal"}]}).encode()

results = []
figures = {}
LOG = f"/tmp/paraminit-load-{os.getpid()}.log"


def log_lines(pred):
    with open(LOG) as f:
        return [l for l in f if pred(l)]


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok: " if ok else "FAIL: ") + name + (f" ({detail})" if detail else ""), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(port, **env):
    e = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{port}", PARAMINIT_MAX_JOBS="2", PARAMINIT_THREADS="2",
             PARAMINIT_IDLE_TIMEOUT_SECS="2", PARAMINIT_BODY_TIMEOUT_SECS="2", PARAMINIT_SHUTDOWN_GRACE_SECS="60",
             RUST_LOG="info", PARAMINIT_LOG_FORMAT="json")
    e.update(env)
    proc = subprocess.Popen([BIN], env=e, stdout=subprocess.DEVNULL, stderr=open(LOG, "w"))
    for _ in range(100):
        try:
            request(port, "GET", "/healthz")
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def request(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    t = time.perf_counter()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t
    c.close()
    return r.status, dict(r.getheaders()), data, dt


def in_flight(port):
    _, _, text, _ = request(port, "GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith("paraminit_jobs_in_flight"):
            return float(line.split()[-1])
    return None


def wait_for(pred, secs):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def open_stream(port, body=BIG):
    """Starts a safetensors generation and returns the socket with the headers read."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/init?format=safetensors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    return s, head


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main():
    port = free_port()
    proc = start(port)
    try:
        # 1. Overload: two slow readers hold both slots.
        holders = [open_stream(port) for _ in range(2)]
        check("both slots taken", wait_for(lambda: in_flight(port) == 2.0, 5))
        statuses, retry = [], []
        for _ in range(20):
            st, h, _, _ = request(port, "POST", "/v1/init", SEED_MLP)
            statuses.append(st)
            retry.append("retry-after" in {k.lower() for k in h})
        check("generations beyond the slots get 503 + Retry-After", all(s == 503 for s in statuses) and all(retry),
              f"{statuses.count(503)}/20 got 503")
        lat = {"plan": [], "healthz": [], "metrics": []}
        for _ in range(30):
            lat["plan"].append(request(port, "POST", "/v1/plan", SEED_MLP)[3])
            lat["healthz"].append(request(port, "GET", "/healthz")[3])
            lat["metrics"].append(request(port, "GET", "/metrics")[3])
        figures["overload_latency_ms"] = {k: {"p50": round(statistics.median(v) * 1e3, 2), "p99": round(pct(v, 0.99) * 1e3, 2)}
                                          for k, v in lat.items()}
        check("plan/healthz/metrics stay fast while generation is full",
              all(pct(v, 0.99) < 0.25 for v in lat.values()), json.dumps(figures["overload_latency_ms"]))
        # 3. The slow readers read nothing: after the idle timeout both slots free.
        check("clients that stop reading are cut off and free their slots", wait_for(lambda: in_flight(port) == 0.0, 15))
        for s, _ in holders:
            s.close()

        # 2. A burst of small generations from 8 threads.
        lat2, codes = [], []
        lock = threading.Lock()

        def worker():
            end = time.time() + 5
            while time.time() < end:
                st, _, data, dt = request(port, "POST", "/v1/init?format=safetensors", SEED_MLP)
                with lock:
                    codes.append(st)
                    if st == 200:
                        lat2.append(dt)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        figures["burst"] = {"requests": len(codes), "200": codes.count(200), "503": codes.count(503),
                            "other": len(codes) - codes.count(200) - codes.count(503),
                            "p50_ms": round(statistics.median(lat2) * 1e3, 2) if lat2 else None,
                            "p99_ms": round(pct(lat2, 0.99) * 1e3, 2) if lat2 else None}
        check("burst: only 200 or 503, nothing else", figures["burst"]["other"] == 0 and figures["burst"]["200"] > 0,
              json.dumps(figures["burst"]))

        # 4. Disconnect mid-stream.
        s, _ = open_stream(port)
        got = 0
        while got < 1 << 20:
            got += len(s.recv(65536))
        s.close()
        check("a client that disconnects frees its slot", wait_for(lambda: in_flight(port) == 0.0, 5))

        # 5. A body that never completes.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/plan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"seed\"")
        s.settimeout(10)
        t = time.time()
        reply = s.recv(4096)
        s.close()
        check("a stalled body gets 408", reply.startswith(b"HTTP/1.1 408"), f"after {time.time() - t:.1f} s")

        # 6. Header flood.
        s = socket.create_connection(("127.0.0.1", port))
        flood = b"".join(b"X-Flood-%d: %s\r\n" % (i, b"a" * 200) for i in range(2000))
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + flood + b"\r\n")
            s.settimeout(5)
            reply = s.recv(4096)
        except OSError:
            reply = b""
        s.close()
        check("a header flood is refused", not reply.startswith(b"HTTP/1.1 200"), reply[:30].decode(errors="replace"))
        time.sleep(0.2)
        flood_logs = log_lines(lambda l: "connection ended with an error" in l and "too large" in l.lower())
        check("the header flood is logged once", len(flood_logs) == 1, f"{len(flood_logs)} log lines")
        stall_logs = log_lines(lambda l: '"status":408' in l.replace(" ", ""))
        check("the stalled body is logged once", len(stall_logs) == 1, f"{len(stall_logs)} log lines")
        check("the server keeps serving after the flood", request(port, "GET", "/healthz")[0] == 200)

        # 7. SIGTERM mid-stream: the stream completes, then exit 0.
        body = json.dumps({"seed": 2, "tensors": [{"name": "w", "shape": [50_000_000], "init": "uniform"}]}).encode()
        s, head = open_stream(port, body)
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        received = len(head.split(b"\r\n\r\n", 1)[1])
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = [l for l in f if l.startswith("VmHWM")]
        figures["peak_rss"] = hwm[0].split(":")[1].strip() if hwm else "?"
        proc.send_signal(signal.SIGTERM)
        s.settimeout(30)
        while received < length:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
        s.close()
        check("SIGTERM mid-stream: the stream completes", received == length, f"{received}/{length} bytes")
        code = proc.wait(timeout=30)
        check("then the process exits 0", code == 0, f"exit {code}")
    finally:
        if proc.poll() is None:
            proc.kill()
    print(json.dumps(figures, indent=2))
    passed = sum(results)
    print(f"load: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
