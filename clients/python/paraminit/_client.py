"""The HTTP side: one :class:`Client` that sends a request to the service and reads its answer.

Errors come back as the service's envelope (``{"error": {"code", "message", "path"}}``) and
are raised as :class:`ParaminitError` with those fields. A 503 ``busy`` is retried after the
service's ``Retry-After``, a bounded number of times.
"""

from __future__ import annotations

import json
import os
import time
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
    body = response.read()
    try:
        err = json.loads(body)["error"]
        raise ParaminitError(err.get("message", ""), status=response.status_code,
                             code=err.get("code"), path=err.get("path"))
    except (ValueError, KeyError, TypeError):
        raise ParaminitError(body[:500].decode("utf-8", "replace"),
                             status=response.status_code) from None


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
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self._http.close()

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
        exactly ``info.nbytes`` bytes (or None to drop the tensor). Nothing but one network chunk
        is held in between. Returns the file's ``__metadata__``.
        """
        with self._send("POST", "/v1/init", request, params={"format": "safetensors"}) as r:
            return read_safetensors(r.iter_bytes(_CHUNK), sink)

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
                response.close()
                if wait is not None:
                    attempt += 1
                    time.sleep(wait)
                    continue
            try:
                _raise_for(response)
            except BaseException:
                response.close()
                raise
            return _Response(response)


def _retry_after(response: httpx.Response) -> Optional[float]:
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
