"""The fake provider's HTTP server: asyncio on loopback, in a background thread, HTTP/1.1 keep-alive.

One event loop serves every connection, so hundreds of concurrent requests cost one thread.
A hung request is accepted and answered with nothing until the client closes the connection.

    with FakeProviderServer(config) as server:      # port 0: an ephemeral port
        litellm.completion(model="openai/gpt-5-mini", api_base=server.base_url, ...)
        server.stats()["models"]["gpt-5-mini"]["rate_limited"]

Over HTTP (for a server in another process): GET /stats, POST /stats/reset, GET /log?model=NAME
(arrival times on the machine's monotonic clock, and outcomes), GET /health.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from tests.support.fake_provider import wire
from tests.support.fake_provider.behaviour import ModelState, Outcome, ProviderRequest
from tests.support.fake_provider.config import PERMANENT_FAULTS, FakeProviderConfig, Fault

MAX_LINE_BYTES = 1 << 20
ERROR_FAULTS = frozenset({Fault.rate_limit, Fault.server_error, Fault.overloaded, *PERMANENT_FAULTS})


class FakeProviderServer:
    def __init__(
        self, config: FakeProviderConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096
    ):
        self.host = host
        self.port = port
        self.backlog = backlog
        self._config = config or FakeProviderConfig()
        self._states: dict[str, ModelState] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._start_error: BaseException | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake provider server is not running (call start() first)")
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeProviderServer:
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if self._start_error is not None:
            self._thread.join(timeout=5)
            self._thread = None
            raise RuntimeError(f"fake provider could not listen on {self.host}:{self.port}") from self._start_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = self._loop = self._server = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve_connection, self.host, self.port, backlog=self.backlog,
                                     limit=MAX_LINE_BYTES)  # fmt: skip
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._loop = loop
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # ----- configuration and statistics (any thread) -----------------------------------------

    @property
    def config(self) -> FakeProviderConfig:
        return self._config

    def reconfigure(self, config: FakeProviderConfig) -> None:
        """Serve new behaviour from now on; counters and caps start afresh."""
        with self._lock:
            self._config = config
            self._states = {}

    def reset_stats(self) -> None:
        with self._lock:
            for state in self._states.values():
                in_flight = state.in_flight
                state.counts.clear()
                state.log.clear()
                state.max_in_flight = in_flight

    def stats(self) -> dict[str, Any]:
        """Counters per model name and summed: requests, ok, rate_limited (and by cap), server_errors, hangs, ..."""
        with self._lock:
            models = {name: state.stats() for name, state in sorted(self._states.items())}
        total: dict[str, int] = {}
        for counts in models.values():
            for key, value in counts.items():
                if key != "max_in_flight":
                    total[key] = total.get(key, 0) + value
        return {"models": models, "total": total}

    def request_log(self, model: str) -> list[tuple[float, str]]:
        """(time.monotonic() at arrival, outcome) of the latest requests to a model, oldest first."""
        with self._lock:
            state = self._states.get(model)
            return list(state.log) if state is not None else []

    def _state(self, model: str) -> ModelState | None:
        with self._lock:
            state = self._states.get(model)
            if state is None:
                behaviour = self._config.behaviour(model)
                if behaviour is None:
                    return None
                state = self._states[model] = ModelState(model, behaviour, self._config.seed, time.monotonic())
            return state

    def _admit(self, state: ModelState, request: ProviderRequest) -> Outcome:
        with self._lock:
            return state.admit(request, time.monotonic())

    def _release(self, state: ModelState, outcome: Outcome) -> None:
        with self._lock:
            state.release(outcome)

    # ----- HTTP ------------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    break
                method, target, headers = head
                body = await _read_body(reader, headers)
                response = await self._respond(method, target, headers, body, reader)
                if response is None:  # a hang ended: the client closed the connection
                    break
                keep_alive = headers.get("connection", "").lower() != "close"
                await _write_response(writer, response, keep_alive)
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes, reader: asyncio.StreamReader
    ) -> wire.WireResponse | None:
        path = target.split("?", 1)[0]
        if method == "GET" and path.rstrip("/") in ("/stats", "/v1/stats"):
            return wire.WireResponse(200, self.stats())
        if method == "GET" and path.rstrip("/") in ("", "/health"):
            return wire.WireResponse(200, {"status": "ok"})
        if method == "GET" and path.rstrip("/") == "/log":  # /log?model=NAME: arrivals (time.monotonic) and outcomes
            model = (parse_qs(target.partition("?")[2]).get("model") or [""])[0]
            return wire.WireResponse(200, {"model": model, "requests": self.request_log(model)})
        if method == "POST" and path.rstrip("/") == "/stats/reset":
            self.reset_stats()
            return wire.WireResponse(200, {"status": "reset"})
        api = wire.api_for_path(path) if method == "POST" else None
        if api is None:
            return wire.WireResponse(404, wire.error_body(wire.OPENAI, 404, f"no route for {method} {path}"))
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the request body must be a JSON object")
            request = wire.parse_request(api, target, headers, payload)
        except ValueError as exc:
            return wire.WireResponse(400, wire.error_body(api, 400, f"invalid request: {exc}"))
        state = self._state(request.model)
        if state is None:
            message = f"The model `{request.model}` does not exist or you do not have access to it."
            return wire.WireResponse(404, wire.error_body(api, 404, message))
        outcome = self._admit(state, request)
        try:
            if outcome.hangs:
                while await reader.read(65536):
                    pass
                return None
            if outcome.latency_s > 0:
                await asyncio.sleep(outcome.latency_s)
            if outcome.fault in ERROR_FAULTS:
                behaviour = state.behaviour
                mode = behaviour.fail_with if outcome.fault in PERMANENT_FAULTS else None
                return wire.error(request, outcome, mode, echo_key=behaviour.echo_key_in_errors)
            return wire.success(request, outcome)
        finally:
            self._release(state, outcome)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
    line = b"\r\n"
    while line in (b"\r\n", b"\n"):  # tolerate blank lines between requests
        line = await reader.readline()
        if not line:
            return None
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3:
        raise ValueError(f"malformed request line {line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return parts[0].upper(), parts[1], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


async def _write_response(writer: asyncio.StreamWriter, response: wire.WireResponse, keep_alive: bool) -> None:
    body = json.dumps(response.body).encode()
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Overloaded" if response.status == 529 else "Error"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
