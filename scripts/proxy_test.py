#!/usr/bin/env python3
"""Scale-out test with real parts (issue 17): nginx with `proxy_cache` (deploy/nginx.conf) in
front of three replicas of the release binary, all on loopback ports. Bounded; stops itself.

Checks, in order:
  1. every replica gives the same bytes and ETag for the same request;
  2. through the proxy, a GET /v1/init?spec= is a cache MISS then a HIT (nginx's
     X-Cache-Status), with the same bytes as the replicas;
  3. Range requests through the proxy (inside one cache slice, across slices, a suffix) give
     206 and exactly those bytes; If-None-Match with the ETag gives 304; a JSON GET is cached
     too; POST passes through uncached;
  4. eight "ranks" fetch their tensor-parallel shards (world_size 8) of one model in parallel
     through the proxy, and each gets exactly its numpy.array_split slice of every tensor of
     the full file; the aggregate throughput is reported;
  5. a replica killed (SIGKILL) while 4 clients send uncached GETs through the proxy: no
     request fails (nginx retries idempotent GETs on the next replica);
  6. a replica drained (SIGTERM) while it streams a response: the stream completes, its
     /readyz stops answering 200 (it closes its listener), the readiness loop below takes it
     out of nginx's upstream (as an orchestrator reading /readyz would), every request still
     succeeds, and the replica exits 0.
Prints figures and `proxy: N passed, M failed`; exits non-zero on any failure.

usage: proxy_test.py [path/to/paraminit]   (nginx from PATH or /usr/sbin/nginx; NGINX=... overrides)
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "paraminit")
NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
CONF = os.path.join(ROOT, "deploy", "nginx.conf")
REPLICAS = 3
RANKS = 8

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("ok: " if ok else "FAIL: ") + name + (f" ({detail})" if detail else ""), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers dict with lower-case names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def spec_path(req, fmt="safetensors"):
    spec = base64.urlsafe_b64encode(json.dumps(req, separators=(",", ":")).encode()).rstrip(b"=")
    return f"/v1/init?format={fmt}&spec={spec.decode()}"


def wait_http(port, path="/healthz", tries=200):
    for _ in range(tries):
        try:
            if request(port, "GET", path, timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def read_safetensors(data):
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    dt = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[base + a:base + b], dtype=dt[t["dtype"]]).reshape(t["shape"])
    return out


class Cluster:
    def __init__(self, tmp):
        self.tmp = tmp
        self.ports = [free_port() for _ in range(REPLICAS)]
        self.proxy_port = free_port()
        self.procs = [None] * REPLICAS
        self.down = set()
        self.nginx = None
        self.conf_path = os.path.join(tmp, "nginx.conf")

    def start_replica(self, i):
        env = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{self.ports[i]}", PARAMINIT_THREADS="1",
                   PARAMINIT_MAX_JOBS="8", PARAMINIT_SHUTDOWN_GRACE_SECS="30", RUST_LOG="info",
                   PARAMINIT_LOG_FORMAT="json")
        log = open(os.path.join(self.tmp, f"replica{i + 1}.log"), "w")
        self.procs[i] = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=log)
        if not wait_http(self.ports[i]):
            raise RuntimeError(f"replica {i + 1} did not start")

    def write_conf(self):
        """deploy/nginx.conf with only its `# test:` lines pointed at this run's ports and
        directory; every substitution must apply, so the test fails if the file drifts."""
        text = open(CONF).read()
        t = self.tmp
        user = "root" if os.geteuid() == 0 else None
        subs = [
            (r"^user www-data;.*$", f"user {user};" if user else "# user: not root"),
            (r"^pid /run/nginx-paraminit.pid;.*$", f"pid {t}/nginx.pid;"),
            (r"^error_log \S+ warn;.*$", f"error_log {t}/error.log warn;"),
            (r"access_log /var/log/nginx/paraminit-access.log paraminit;.*$",
             f"access_log {t}/access.log paraminit;"),
            (r"client_body_temp_path /var/lib/nginx/body;.*$", f"client_body_temp_path {t}/body;"),
            (r"proxy_temp_path /var/lib/nginx/proxy;.*$", f"proxy_temp_path {t}/proxy;"),
            (r"/var/cache/nginx/paraminit", f"{t}/cache"),
            (r"listen 127\.0\.0\.1:8080;.*$", f"listen 127.0.0.1:{self.proxy_port};"),
        ]
        for i in range(REPLICAS):
            down = " down" if i in self.down else ""
            subs.append((rf"server 127\.0\.0\.1:808{i + 1} (max_fails=1 fail_timeout=5s);.*$",
                         rf"server 127.0.0.1:{self.ports[i]} \1{down};"))
        for pat, rep in subs:
            text, n = re.subn(pat, rep, text, flags=re.M)
            if n != 1:
                raise RuntimeError(f"deploy/nginx.conf: {pat!r} matched {n} times, expected once")
        with open(self.conf_path, "w") as f:
            f.write(text)

    def nginx_cmd(self, *extra):
        return [NGINX, "-p", self.tmp, "-c", self.conf_path, *extra]

    def start_nginx(self):
        self.write_conf()
        t = subprocess.run(self.nginx_cmd("-t"), capture_output=True, text=True)
        check("nginx -t accepts deploy/nginx.conf", t.returncode == 0, t.stderr.strip()[-300:])
        self.nginx = subprocess.Popen(self.nginx_cmd("-g", "daemon off;"),
                                      stderr=open(os.path.join(self.tmp, "nginx.stderr"), "w"))
        if not wait_http(self.proxy_port):
            raise RuntimeError("nginx did not start")

    def reload_nginx(self):
        self.write_conf()
        r = subprocess.run(self.nginx_cmd("-s", "reload"), capture_output=True, text=True)
        time.sleep(0.5)  # the new workers take over
        return r.returncode == 0

    def stop(self):
        if self.nginx and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        for p in self.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait()


def run(c):
    mlp = {"seed": 17, "framework": "pytorch", "layers": [
        {"type": "dense", "name": "fc1", "in_features": 1024, "out_features": 4096},
        {"type": "gelu"},
        {"type": "dense", "name": "fc2", "out_features": 1024}]}
    full_path = spec_path(mlp)

    # 1. Same bytes and ETag from every replica.
    direct = [request(p, "GET", full_path) for p in c.ports]
    bodies = {sha(d[2]) for d in direct}
    etags = {d[1].get("etag") for d in direct}
    check("every replica: 200, same bytes, same ETag", all(d[0] == 200 for d in direct)
          and len(bodies) == 1 and len(etags) == 1 and None not in etags,
          f"{len(direct[0][2])} bytes, sha {bodies}, etag {etags}")
    full = direct[0][2]
    etag = direct[0][1].get("etag")

    # 2. MISS, then HIT, same bytes.
    s1, h1, b1 = request(c.proxy_port, "GET", full_path)
    t = time.perf_counter()
    s2, h2, b2 = request(c.proxy_port, "GET", full_path)
    hit_s = time.perf_counter() - t
    check("proxy: first GET is a MISS with the replicas' bytes",
          s1 == 200 and h1.get("x-cache-status") == "MISS" and b1 == full,
          f"{s1} {h1.get('x-cache-status')}")
    check("proxy: second GET is a HIT with the same bytes and ETag",
          s2 == 200 and h2.get("x-cache-status") == "HIT" and b2 == full and h2.get("etag") == etag,
          f"{s2} {h2.get('x-cache-status')}, {len(b2) / hit_s / 1e9:.2f} GB/s from the cache")
    check("proxy: Cache-Control immutable passed on",
          "immutable" in h2.get("cache-control", ""), h2.get("cache-control", ""))

    # 3. Ranges (inside the first 1 MiB slice, across the slice boundary, near the end, a
    # suffix), on a cached and on an uncached model.
    n = len(full)
    other = spec_path(dict(mlp, seed=18))
    other_full = request(c.ports[0], "GET", other)[2]
    cases = [(full_path, full, "bytes=0-7", 0, 7), (full_path, full, "bytes=1000-70000", 1000, 70000),
             (full_path, full, "bytes=1048000-2100000", 1048000, 2100000),
             (other, other_full, "bytes=3000000-3145727", 3000000, 3145727),
             (other, other_full, f"bytes=-4096", len(other_full) - 4096, len(other_full) - 1)]
    for path, ref, rng, a, b in cases:
        s, h, body = request(c.proxy_port, "GET", path, headers={"Range": rng})
        want_cr = f"bytes {a}-{b}/{len(ref)}"
        check(f"proxy: Range {rng} gives 206 and exactly those bytes",
              s == 206 and body == ref[a:b + 1] and h.get("content-range") == want_cr,
              f"{s}, {len(body)} bytes, {h.get('content-range')}, cache {h.get('x-cache-status')}")
    s, h, body = request(c.proxy_port, "GET", full_path, headers={"If-None-Match": etag})
    check("proxy: If-None-Match with the ETag gives 304", s == 304 and body == b"", f"{s}")
    s, h, body = request(c.proxy_port, "GET", other, headers={"If-None-Match": '"nope"'})
    check("proxy: If-None-Match with another tag gives 200 and the bytes",
          s == 200 and body == other_full, f"{s}")
    small = {"seed": 3, "tensors": [{"name": "w", "shape": [300, 7], "init": "normal"}]}
    jpath = spec_path(small, "json")
    js = [request(c.proxy_port, "GET", jpath) for _ in range(2)]
    jd = request(c.ports[1], "GET", jpath)
    check("proxy: JSON GET cached too (MISS, HIT), same bytes as a replica",
          [x[0] for x in js] == [200, 200] and js[0][2] == js[1][2] == jd[2]
          and [x[1].get("x-cache-status") for x in js] == ["MISS", "HIT"],
          f"{[x[1].get('x-cache-status') for x in js]}, {len(jd[2])} bytes")
    body = json.dumps(small).encode()
    posts = [request(c.proxy_port, "POST", "/v1/init?format=json", body=body) for _ in range(2)]
    check("proxy: POST /v1/init passes through uncached with the same bytes",
          all(p[0] == 200 and p[2] == jd[2] and "x-cache-status" not in p[1] for p in posts),
          f"{[p[0] for p in posts]}")

    # 4. Eight ranks fetch their shards in parallel (through the proxy, first fetch: the
    # replicas generate), and each gets exactly its slices of the full file.
    whole = read_safetensors(full)
    shard_dims = {"fc2.weight": 1, "fc2.bias": None}
    got = [None] * RANKS

    def rank(r):
        req = dict(mlp, shard={"rank": r, "world_size": RANKS, "dim": 0, "dims": shard_dims})
        got[r] = request(c.proxy_port, "GET", spec_path(req))

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(RANKS)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t
    total = sum(len(g[2]) for g in got if g)
    bad = []
    for r, g in enumerate(got):
        if not g or g[0] != 200:
            bad.append(f"rank {r}: {g and g[0]}")
            continue
        mine = read_safetensors(g[2])
        for name, arr in whole.items():
            dim = shard_dims.get(name, 0)
            want = arr if dim is None else np.array_split(arr, RANKS, axis=dim)[r]
            if name not in mine or mine[name].shape != want.shape or mine[name].tobytes() != want.tobytes():
                bad.append(f"rank {r}: {name}")
    check(f"{RANKS} ranks in parallel through the proxy: each gets exactly its slices",
          not bad, "; ".join(bad[:4]) or
          f"{total / 1e6:.1f} MB in {dt:.3f} s = {total / dt / 1e9:.2f} GB/s aggregate (cache misses)")
    t = time.perf_counter()
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(RANKS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt2 = time.perf_counter() - t
    check(f"{RANKS} ranks again: all HITs", all(g and g[1].get("x-cache-status") == "HIT" for g in got),
          f"{total / dt2 / 1e9:.2f} GB/s aggregate from the cache")

    # Throughput without Python in the way: 8 curl processes (one per rank) to /dev/null,
    # first for a model no replica has served yet (cache misses), then again (hits).
    curl = shutil.which("curl")
    if curl:
        for label, seed in (("cache misses", 99), ("cache hits", 99)):
            urls = [f"http://127.0.0.1:{c.proxy_port}" + spec_path(dict(mlp, seed=seed, shard={
                "rank": r, "world_size": RANKS, "dim": 0, "dims": shard_dims})) for r in range(RANKS)]
            t = time.perf_counter()
            ps = [subprocess.Popen([curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", u],
                                   stdout=subprocess.PIPE, text=True) for u in urls]
            outs = [p.communicate()[0].split() for p in ps]
            dt = time.perf_counter() - t
            n_bytes = sum(int(o[1]) for o in outs if len(o) == 2)
            check(f"{RANKS} curl ranks in parallel ({label}): all 200",
                  all(o and o[0] == "200" for o in outs),
                  f"{n_bytes / 1e6:.1f} MB in {dt:.3f} s = {n_bytes / dt / 1e9:.2f} GB/s aggregate")

    # 5. Kill replica 3 while 4 clients send uncached GETs (a new seed each: cache misses).
    stop = threading.Event()
    statuses = []
    lock = threading.Lock()
    counter = iter(range(10**6))

    resumed = []

    def client():
        while not stop.is_set():
            with lock:
                k = next(counter)
            req = {"seed": 1000 + k, "tensors": [{"name": "w", "shape": [64, 256], "init": "normal"}]}
            path = spec_path(req)
            try:
                s, h, b = request(c.proxy_port, "GET", path)
                ok = s == 200 and len(b) > 64 * 256 * 4
            except http.client.IncompleteRead as e:
                # The replica died after nginx had started the response: nginx cannot retry
                # that (bytes reached the client), so the client resumes with a Range request,
                # which the cache or another replica answers.
                part = bytes(e.partial)
                try:
                    s2, h2, rest = request(c.proxy_port, "GET", path,
                                           headers={"Range": f"bytes={len(part)}-"})
                    want = request(c.ports[0], "GET", path)[2]
                    ok = s2 == 206 and part + rest == want
                    s = f"resumed at {len(part)}: {s2}"
                except Exception as e2:  # noqa: BLE001 - any failure of the resume is a failure
                    s, ok = repr(e2), False
                with lock:
                    resumed.append((s, ok))
                if ok:
                    s = 200
            except Exception as e:  # noqa: BLE001 - refused, reset, anything: counted as lost
                s, ok = repr(e), False
            with lock:
                statuses.append(s if ok else f"bad {s}")

    clients = [threading.Thread(target=client) for _ in range(4)]
    for th in clients:
        th.start()
    time.sleep(1.0)
    c.procs[2].kill()
    c.procs[2].wait()
    killed_at = len(statuses)
    time.sleep(1.5)
    stop.set()
    for th in clients:
        th.join()
    failed = [s for s in statuses if s != 200]
    check("SIGKILL of replica 3 under load: no request lost (retried on the others; a response "
          "cut mid-body resumed with Range)",
          not failed and len(statuses) > killed_at > 0,
          f"{len(statuses)} requests, {killed_at} before the kill, {len(resumed)} cut mid-body "
          f"and resumed {resumed[:2]}, failed: {failed[:3]}")

    # 6. Drain replica 2: a long response streams from it directly; SIGTERM; the stream
    # completes; its /readyz stops answering 200; the readiness loop marks it down in nginx;
    # every request meanwhile succeeds; it exits 0.
    big = {"seed": 5, "tensors": [{"name": "w", "shape": [100_000_000], "init": "uniform"}]}
    stream = {}

    def long_stream():
        try:
            s, h, b = request(c.ports[1], "GET", spec_path(big), timeout=120)
            stream["result"] = (s, len(b), int(h.get("content-length", -1)))
        except Exception as e:  # noqa: BLE001
            stream["result"] = (repr(e), 0, -1)

    th = threading.Thread(target=long_stream)
    th.start()
    time.sleep(0.3)
    c.procs[1].send_signal(signal.SIGTERM)
    ready = {}
    for _ in range(40):  # the readiness loop: /readyz of every replica still in the upstream
        for i in range(REPLICAS):
            if i in c.down:
                continue
            try:
                ready[i] = request(c.ports[i], "GET", "/readyz", timeout=2)[0]
            except OSError as e:
                ready[i] = type(e).__name__
            if ready[i] != 200:
                c.down.add(i)
        if 1 in c.down:
            break
        time.sleep(0.05)
    reloaded = c.reload_nginx()
    check("drain: replica 2's /readyz stops answering 200; taken out of the upstream",
          1 in c.down and reloaded, f"readyz {ready}, down {sorted(i + 1 for i in c.down)}")
    after = [request(c.proxy_port, "GET", spec_path({"seed": 5000 + k, "tensors": [
        {"name": "w", "shape": [1000], "init": "normal"}]})) for k in range(30)]
    check("after the drain: 30 uncached GETs through the proxy all 200",
          all(a[0] == 200 for a in after), f"{[a[0] for a in after if a[0] != 200][:5]}")
    th.join(120)
    s, got_n, want_n = stream.get("result", ("none", 0, -1))
    check("drain: the in-flight stream from replica 2 completed",
          s == 200 and got_n == want_n > 0, f"{s}, {got_n} of {want_n} bytes")
    try:
        rc = c.procs[1].wait(60)
    except subprocess.TimeoutExpired:
        rc = "still running"
    check("drain: replica 2 exited 0", rc == 0, f"exit {rc}")
    with open(os.path.join(c.tmp, "access.log")) as f:
        log = f.read()
    check("nginx access log records cache status and upstream of every request",
          "cache=HIT" in log and "cache=MISS" in log, f"{log.count(chr(10))} lines")


def main():
    if not os.path.exists(NGINX):
        print(f"FAIL: nginx not found ({NGINX}); .ci/run installs Debian's nginx")
        print("proxy: 0 passed, 1 failed")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="paraminit-proxy-")
    os.chmod(tmp, 0o755)
    c = Cluster(tmp)
    t0 = time.perf_counter()
    try:
        for i in range(REPLICAS):
            c.start_replica(i)
        c.start_nginx()
        run(c)
    except Exception as e:  # a broken step is a failure, not a crash that leaves processes
        check("proxy test ran to the end", False, repr(e))
    finally:
        c.stop()
        if os.environ.get("PROXY_TEST_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    passed, failed = sum(results), len(results) - sum(results)
    print(f"proxy test took {time.perf_counter() - t0:.1f} s")
    print(f"proxy: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
