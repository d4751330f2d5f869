"""The HTTP side: one :class:`Client` that sends a request to the service and reads its answer.

Errors come back as the service's envelope (``{"error": {"code", "message", "path"}}``) and
are raised as :class:`ParaminitError` with those fields. A 503 ``busy`` is retried after the
service's ``Retry-After``, a bounded number of times.

httpx carries every route, except the body of :meth:`Client.stream` (the weights), which is
read with the standard library's ``http.client`` straight from the socket into the caller's
buffers (``readinto``, i.e. ``recv_into`` into the tensors' storage): httpx only hands out
``bytes`` chunks of 64 KiB, which costs a copy of every byte and Python work per chunk on the
one path where the bytes are the whole cost (see docs/performance.md, "The Python client").
The two transports share the request, headers, timeouts, retries and error parsing below;
when the environment configures a proxy for the URL, httpx carries the stream too (it is the
one that honours proxies).
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterator, Mapping, Optional

import httpx

from ._stream import TensorInfo, read_safetensors

DEFAULT_URL = "http://localhost:8080"
"""Used when neither ``url=`` nor ``PARAMINIT_URL`` is given."""

# Network chunks are passed on as they arrive (None): re-chunking them to a fixed size would
# copy every byte once more on its way into the caller's buffers.
_CHUNK = None


class ParaminitError(Exception):
    """An error answered by the service (its envelope), or a transport failure (``status`` None)."""

    def __init__(self, message: str, *, status: Optional[int] = None, code: Optional[str] = None,
                 path: Optional[str] = None):
        self.status = status
        self.code = code
        self.message = message
        self.path = path
        where = f" at {path}" if path else ""
        head = f"{status} {code}: " if status is not None else ""
        super().__init__(f"{head}{message}{where}")


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    _raise_envelope(response.status_code, response.read())


def _raise_envelope(status: int, body: bytes) -> None:
    """Raises the service's error envelope (or the start of a body that is not one)."""
    try:
        err = json.loads(body)["error"]
        raise ParaminitError(err.get("message", ""), status=status,
                             code=err.get("code"), path=err.get("path"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ParaminitError(body[:500].decode("utf-8", "replace"), status=status) from None


class Client:
    """A connection to one paraminit service.

    ``url`` defaults to ``$PARAMINIT_URL`` or ``http://localhost:8080``; ``token`` to
    ``$PARAMINIT_API_TOKEN`` (sent as ``Authorization: Bearer``). ``retries`` bounds how often a
    503 ``busy`` is retried (each after the service's ``Retry-After``).
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 timeout: float = 600.0, retries: int = 5):
        self.url = (url or os.environ.get("PARAMINIT_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("PARAMINIT_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self._headers = headers
        self._timeout = timeout
        self._direct = _direct_target(self.url)
        # Both made on first use: building either loads the CA bundle (~45 ms), which
        # `initialize` on a plain-http URL would otherwise pay for a client it never uses.
        self._httpx: Optional[httpx.Client] = None
        self._ssl = None

    @property
    def _http(self) -> httpx.Client:
        if self._httpx is None:
            self._httpx = httpx.Client(base_url=self.url, headers=self._headers,
                                       timeout=httpx.Timeout(self._timeout,
                                                             connect=_CONNECT_TIMEOUT))
        return self._httpx

    def close(self) -> None:
        if self._httpx is not None:
            self._httpx.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the routes -------------------------------------------------------------------------

    def plan(self, request: Mapping[str, Any]) -> dict:
        """``POST /v1/plan``: names, shapes, byte ranges and resolved initializers, no values."""
        with self._send("POST", "/v1/plan", request) as r:
            return json.loads(r.read())

    def analyze(self, request: Mapping[str, Any]) -> dict:
        """``POST /v1/analyze``: the signal-propagation report."""
        with self._send("POST", "/v1/analyze", request) as r:
            return json.loads(r.read())

    def init_json(self, request: Mapping[str, Any]) -> dict:
        """``POST /v1/init`` as JSON: ``{"seed", ..., "tensors": [{name, dtype, shape, data}]}``."""
        with self._send("POST", "/v1/init", request, params={"format": "json"}) as r:
            return json.loads(r.read())

    def init_safetensors(self, request: Mapping[str, Any]) -> bytes:
        """``POST /v1/init`` as one safetensors file, in memory (small models; else :meth:`stream`)."""
        with self._send("POST", "/v1/init", request, params={"format": "safetensors"}) as r:
            return r.read()

    def stream(self, request: Mapping[str, Any],
               sink: Callable[[TensorInfo], Optional[memoryview]]) -> dict:
        """``POST /v1/init`` as safetensors, written tensor by tensor into buffers ``sink`` gives.

        ``sink(info)`` is called once per tensor in file order and returns a writable buffer of
        exactly ``info.nbytes`` bytes (or None to drop the tensor). The socket is read straight
        into those buffers (through httpx's chunks, one at a time, when a proxy is configured).
        Returns the file's ``__metadata__``.
        """
        params = {"format": "safetensors"}
        if self._direct is None:
            with self._send("POST", "/v1/init", request, params=params) as r:
                return read_safetensors(r.iter_bytes(_CHUNK), sink)
        with self._send_direct("POST", "/v1/init", request, params) as r:
            return read_safetensors(r, sink)

    def get_json(self, path: str) -> Any:
        """A GET route answering JSON (``/v1/initializers``, ``/healthz``)."""
        with self._send("GET", path, None) as r:
            return json.loads(r.read())

    # --- transport --------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Optional[Mapping[str, Any]],
              params: Optional[dict] = None) -> "_Response":
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        attempt = 0
        while True:
            req = self._http.build_request(method, path, content=content, headers=headers,
                                           params=params)
            try:
                response = self._http.send(req, stream=True)
            except httpx.HTTPError as e:
                raise ParaminitError(f"{method} {self.url}{path} failed: {e}") from e
            if response.status_code == 503 and attempt < self.retries:
                wait = _retry_after(response)
                # Without a Retry-After the 503 is not retried: it is raised below with its
                # envelope, so the response must stay open until then.
                if wait is not None:
                    response.close()
                    attempt += 1
                    time.sleep(wait)
                    continue
            try:
                _raise_for(response)
            except BaseException:
                response.close()
                raise
            return _Response(response)

    def _send_direct(self, method: str, path: str, body: Optional[Mapping[str, Any]],
                     params: dict) -> "_DirectResponse":
        """:meth:`_send` over ``http.client``: the same request, headers, timeouts, retries and
        errors, answering a response whose body is read with ``readinto``."""
        scheme, host, port, prefix = self._direct
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = dict(self._headers)
        if content is not None:
            headers["Content-Type"] = "application/json"
        target = f"{prefix}{path}?{urllib.parse.urlencode(params)}"
        attempt = 0
        while True:
            # A fresh connection per request: one connect per stream of a whole model is
            # negligible, and nothing has to decide whether a pooled one is still alive.
            if scheme == "https":
                if self._ssl is None:
                    # httpx's own default context (certifi, or $SSL_CERT_FILE/$SSL_CERT_DIR),
                    # so both transports trust the same certificates.
                    self._ssl = httpx.create_ssl_context()
                conn = http.client.HTTPSConnection(host, port, timeout=_CONNECT_TIMEOUT,
                                                   context=self._ssl)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=_CONNECT_TIMEOUT)
            try:
                conn.connect()
                conn.sock.settimeout(self._timeout)
                conn.request(method, target, body=content, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise ParaminitError(f"{method} {self.url}{path} failed: {_why(e)}") from e
            if response.status == 503 and attempt < self.retries:
                wait = _retry_after(response)
                if wait is not None:
                    conn.close()
                    attempt += 1
                    time.sleep(wait)
                    continue
            if response.status >= 400:
                try:
                    raw = response.read()
                except (OSError, http.client.HTTPException) as e:
                    raise ParaminitError(f"the response was cut off: {_why(e)}",
                                         status=response.status) from e
                finally:
                    conn.close()
                _raise_envelope(response.status, raw)
            return _DirectResponse(conn, response)


# httpx's connect timeout, and the stdlib path's: a service that does not accept within this
# is down, whatever the (long) read timeout for a big model is.
_CONNECT_TIMEOUT = 10.0


def _direct_target(url: str) -> Optional[tuple]:
    """(scheme, host, port, path prefix) for the ``http.client`` stream, or None when httpx
    must carry it: a proxy is configured for the scheme (httpx honours ``*_PROXY``, the direct
    path does not), or the URL is not a plain ``http``/``https`` one (credentials or a query in
    it are httpx's to interpret)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.query:
        return None
    proxies = urllib.request.getproxies()
    if parts.scheme in proxies or "all" in proxies:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def _why(e: BaseException) -> str:
    """An exception as text; some stdlib ones (a bare ``TimeoutError``) have no message."""
    return str(e) or type(e).__name__


def _retry_after(response) -> Optional[float]:
    """Seconds to wait before retrying a 503 (httpx or http.client headers), capped at 60."""
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


class _Response:
    """A streamed response that is closed when the ``with`` block ends."""

    def __init__(self, response: httpx.Response):
        self._r = response

    def __enter__(self) -> "_Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._r.close()

    @property
    def headers(self) -> httpx.Headers:
        return self._r.headers

    def read(self) -> bytes:
        return self._r.read()

    def iter_bytes(self, size: int) -> Iterator[bytes]:
        try:
            yield from self._r.iter_bytes(size)
        except httpx.HTTPError as e:
            raise ParaminitError(f"the response was cut off: {e}") from e


class _DirectResponse:
    """An ``http.client`` response read with ``readinto``; closed when the ``with`` ends.

    A body that ends before its ``Content-Length`` (or before the last chunk), a reset or a
    read timeout raises the same :class:`ParaminitError` as a cut-off httpx stream."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse):
        self._conn = conn
        self._r = response

    def __enter__(self) -> "_DirectResponse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._conn.close()

    def readinto(self, b) -> int:
        try:
            n = self._r.readinto(b)
        except (OSError, http.client.HTTPException) as e:
            raise ParaminitError(f"the response was cut off: {_why(e)}") from e
        # http.client answers 0 at a premature end of a Content-Length body (it does not raise
        # IncompleteRead there, for compatibility); ``length`` still counts what is missing.
        if not n and len(b) and self._r.length:
            raise ParaminitError(f"the response was cut off: {self._r.length} bytes of the "
                                 f"announced length never came")
        return n
