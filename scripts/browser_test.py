#!/usr/bin/env python3
"""Drives the explorer in headless Chromium over the DevTools protocol (``--remote-debugging-pipe``,
standard library only) at 390x844 and 1400x900, against a release server without and with
``PARAMINIT_API_TOKEN``. Checks: the seed MLP analyses (plan table, histograms with axes and
tooltips, chart, verdict with what it covers), tensors in natural order, the page fits the
viewport (no horizontal scroll), controls and JSON stay in sync both ways, an error after a
success clears the old results, the recipe picker and a side-by-side of two recipes' curves on a
7B-shaped Llama, the download is a ``GET /v1/init?spec=`` link whose bytes equal the POST, and a
token-protected server serves the page with a token field and works once the token is typed.
Screenshots go to the directory in argv[3] (``explorer-390.png``, ``explorer-1400.png``,
``explorer-compare-*.png``).

Usage: browser_test.py BIN CHROMIUM [SHOT_DIR]
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


class Cdp:
    """A DevTools session over the pipe: requests on fd 3, answers and events on fd 4."""

    def __init__(self, chromium, profile):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        # Chromium reads requests from fd 3 and writes to fd 4: move the pipe ends to high fds
        # first (so no redirection clobbers another), then let the shell place them.
        os.dup2(to_r, 100)
        os.dup2(from_w, 101)
        os.close(to_r)
        os.close(from_w)
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec "$@" 3<&100 4>&101 100<&- 101>&-', "bash"] + args,
            pass_fds=(100, 101), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(100)
        os.close(101)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def _read(self):
        while b"\0" not in self.buf:
            chunk = os.read(self.from_r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True):
        self.next_id += 1
        m = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            m["sessionId"] = self.session
        os.write(self.to_w, json.dumps(m).encode() + b"\0")
        while True:
            r = self._read()
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r.get("result", {})

    def open(self, width, height):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def goto(self, url):
        self.call("Page.navigate", {"url": url})
        self.wait("document.readyState === 'complete' && !!document.getElementById('spec').value")

    def wait(self, cond, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.eval(f"!!({cond})"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {cond}")

    def screenshot(self, path, full=True):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        self.proc.wait(timeout=10)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(binary, token=None):
    port = free_port()
    env = dict(os.environ, PARAMINIT_ADDR=f"127.0.0.1:{port}")
    if token:
        env["PARAMINIT_API_TOKEN"] = token
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, f"http://127.0.0.1:{port}"
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


passed = failed = 0


def check(label, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok: {label}")
    else:
        failed += 1
        print(f"FAIL: {label} {detail}")


def run_analyze(cdp):
    cdp.eval("document.getElementById('run').click()")
    cdp.wait("document.body.dataset.ready === '1' || document.body.dataset.ready === 'error'", 120)


def scenario(cdp, base, width, height, shot_dir):
    tag = f"[{width}x{height}]"
    cdp.goto(base + "/")
    run_analyze(cdp)
    q = cdp.eval
    check(f"{tag} seed MLP analysed", q("document.body.dataset.ready") == "1", q("document.getElementById('error').textContent"))
    rows = q("document.querySelectorAll('#plan-table tbody tr').length")
    check(f"{tag} plan table lists the 7 tensors", rows == 7, rows)
    check(f"{tag} a histogram per tensor", q("document.querySelectorAll('svg.histogram').length") == 7)
    check(f"{tag} histograms have axes and tooltips",
          q("document.querySelectorAll('svg.histogram')[0].querySelectorAll('text.axis').length") >= 4
          and q("document.querySelectorAll('svg.histogram rect.bar title').length") >= 7 * 40)
    check(f"{tag} chart has forward and backward lines",
          q("!!document.querySelector('#chart .forward') && !!document.querySelector('#chart .backward')"))
    verdict = q("document.getElementById('verdict').textContent")
    covers = q("document.getElementById('covers').textContent")
    check(f"{tag} verdict and what it covers shown", verdict.startswith("verdict: ") and "layers [0,1,2] of 3" in covers, (verdict, covers))
    names = q("[...document.querySelectorAll('#plan-table tbody tr td:first-child')].map(td => td.textContent)")
    check(f"{tag} natural tensor order", names == ["0.bias", "0.weight", "1.bias", "1.weight", "2.bias", "2.weight", "extra.scale"], names)
    # Against the device width: a mobile viewport would otherwise grow to fit wide content.
    fits = q(f"document.documentElement.scrollWidth <= {width}")
    check(f"{tag} page fits the viewport (no horizontal scroll)", fits,
          (q("document.documentElement.scrollWidth"), q("window.innerWidth")))
    if width < 600:
        check(f"{tag} one column on a phone",
              q("getComputedStyle(document.querySelector('main')).gridTemplateColumns.split(' ').length") == 1)
    else:
        check(f"{tag} two columns on a desktop",
              q("getComputedStyle(document.querySelector('main')).gridTemplateColumns.split(' ').length") == 2)
    cdp.screenshot(os.path.join(shot_dir, f"explorer-{width}.png"))

    # The download is a GET /v1/init?spec= link; its bytes are the POST's.
    href = q("document.getElementById('download').href")
    check(f"{tag} download is a GET ?spec= link", "/v1/init?format=safetensors&spec=" in href, href)
    if width >= 600:
        got = urllib.request.urlopen(href).read()
        spec = json.loads(q("document.getElementById('spec').value"))
        req = urllib.request.Request(base + "/v1/init?format=safetensors", data=json.dumps(spec).encode(),
                                     headers={"Content-Type": "application/json"})
        check(f"{tag} link bytes equal the POST", got == urllib.request.urlopen(req).read())

    # Controls → JSON and JSON → controls.
    q("(() => { const s = document.getElementById('framework'); s.value = 'keras'; s.dispatchEvent(new Event('change')); })()")
    check(f"{tag} framework control writes the JSON", json.loads(q("document.getElementById('spec').value"))["framework"] == "keras")
    q("(() => { const t = document.getElementById('spec'); const s = JSON.parse(t.value); s.seed = 777; s.dtype = 'bfloat16';"
      " t.value = JSON.stringify(s); t.dispatchEvent(new Event('input')); })()")
    check(f"{tag} JSON edits update the controls",
          q("document.getElementById('seed').value") == "777" and q("document.getElementById('dtype').value") == "bfloat16")
    check(f"{tag} download link follows the JSON", q("document.getElementById('download').href") != href)

    # An error after a success clears the old results.
    run_analyze(cdp)
    check(f"{tag} keras seed MLP analysed", q("document.body.dataset.ready") == "1")
    q("(() => { const t = document.getElementById('spec'); const s = JSON.parse(t.value); s.layers[0].out_features = 0;"
      " t.value = JSON.stringify(s); t.dispatchEvent(new Event('input')); })()")
    run_analyze(cdp)
    err = q("document.getElementById('error').textContent")
    check(f"{tag} error shown with its path", "422" in err and "layers[0].out_features" in err, err)
    left = q("document.querySelectorAll('#plan-table tbody tr').length + document.querySelectorAll('svg.histogram').length"
             " + document.querySelectorAll('#chart *').length + document.getElementById('verdict').textContent.length")
    check(f"{tag} old results cleared after the error", left == 0, left)

    # Recipe picker and a side-by-side of two recipes on a 7B-shaped Llama.
    q("(() => { const s = document.getElementById('example'); s.value = 'llama7b'; s.dispatchEvent(new Event('change')); })()")
    check(f"{tag} recipe picker shows the example's recipe", q("document.getElementById('recipe').value") == "torchtitan")
    q("(() => { const s = document.getElementById('recipe'); s.value = 'olmo_mitchell'; s.dispatchEvent(new Event('change')); })()")
    check(f"{tag} recipe picker writes the JSON", json.loads(q("document.getElementById('spec').value"))["recipe"] == "olmo_mitchell")
    q("document.getElementById('compare').value = 'megatron_scaled'")
    run_analyze(cdp)
    check(f"{tag} 7B Llama forecast analysed", q("document.body.dataset.ready") == "1", q("document.getElementById('error').textContent"))
    check(f"{tag} two recipes' curves side by side",
          q("document.querySelectorAll('#chart polyline').length") == 4
          and q("document.querySelectorAll('#chart polyline.compare').length") == 2)
    legend = q("document.getElementById('legend').textContent")
    check(f"{tag} legend names both recipes", "olmo_mitchell" in legend and "megatron_scaled" in legend, legend)
    check(f"{tag} forecast verdict covers all blocks", "all 32 blocks" in q("document.getElementById('covers').textContent"))
    check(f"{tag} 7B plan lists 291 tensors", q("document.querySelectorAll('#plan-table tbody tr').length") == 291)
    check(f"{tag} page still fits with the 7B plan", q(f"document.documentElement.scrollWidth <= {width}"),
          q("document.documentElement.scrollWidth"))
    q("document.getElementById('verdict').scrollIntoView()")
    cdp.screenshot(os.path.join(shot_dir, f"explorer-compare-{width}.png"), full=False)


def token_scenario(cdp, base, width, height):
    tag = f"[token {width}x{height}]"
    page = urllib.request.urlopen(base + "/").read().decode()
    check(f"{tag} GET / is served without a token", 'data-auth="required"' in page)
    cdp.goto(base + "/")
    q = cdp.eval
    check(f"{tag} token field shown", q("!document.getElementById('auth').hidden && document.getElementById('token').offsetWidth > 0"))
    check(f"{tag} μP base_width hidden until μP is picked", q("document.getElementById('base-width').offsetWidth") == 0)
    run_analyze(cdp)
    err = q("document.getElementById('error').textContent")
    check(f"{tag} without the token: 401 shown", "401" in err, err)
    q("(() => { const t = document.getElementById('token'); t.value = 's3cret'; t.dispatchEvent(new Event('input')); })()")
    run_analyze(cdp)
    check(f"{tag} with the token: analysed", q("document.body.dataset.ready") == "1", q("document.getElementById('error').textContent"))
    check(f"{tag} token kept only in the page", q("localStorage.length + sessionStorage.length") == 0 and "s3cret" not in q("document.cookie"))
    check(f"{tag} download streams (a link cannot carry the token)", q("document.getElementById('download').dataset.mode") == "stream")


def main():
    binary, chromium = sys.argv[1], sys.argv[2]
    shot_dir = sys.argv[3] if len(sys.argv) > 3 else "target/explorer"
    os.makedirs(shot_dir, exist_ok=True)
    open_srv, open_base = serve(binary)
    tok_srv, tok_base = serve(binary, token="s3cret")
    profile = tempfile.mkdtemp()
    cdp = Cdp(chromium, profile)
    try:
        for w, h in [(390, 844), (1400, 900)]:
            cdp.open(w, h)
            scenario(cdp, open_base, w, h, shot_dir)
            token_scenario(cdp, tok_base, w, h)
    finally:
        cdp.close()
        open_srv.terminate()
        tok_srv.terminate()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"browser: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
