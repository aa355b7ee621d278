"""GitHub webhook receiver: verified deliveries become Prefect events (DESIGN.md §5).

Prefect's own webhooks are a Prefect Cloud feature; with a self-hosted server this small receiver
takes GitHub's deliveries, checks their HMAC signature and emits `quorum.task.requested` (an issue
labelled for AI) or `quorum.repo.pushed` (a branch push) to the Prefect API in `PREFECT_API_URL`.
A deployment trigger on those events starts the run.

    QUORUM_GITHUB_WEBHOOK_SECRET=... python -m quorum.github_webhook --host 0.0.0.0 --port 8088

Endpoints: `POST /` (also `/github`, `/webhook`) for deliveries, `GET /healthz` for liveness.
Answers: 200 emitted (or ping), 202 ignored (with the reason), 400 bad JSON or payload, 401 missing
or malformed signature, 403 wrong signature, 404/405 unknown path or method, 411 no Content-Length,
413 too large, 503 Prefect did not accept the event (GitHub shows the delivery as failed; redeliver it).
Neither the secret nor a signature is ever logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import SecretStr, ValidationError

from quorum.domain.events import QuorumEvent
from quorum.prefect_api.events import post_event
from quorum.github_webhook.routing import DEFAULT_LABEL, DEFAULT_MAX_BODY_BYTES, WebhookSettings, route_delivery

SECRET_ENV = "QUORUM_GITHUB_WEBHOOK_SECRET"
LABEL_ENV = "QUORUM_GITHUB_LABEL"
DELIVERY_PATHS = frozenset({"/", "/github", "/webhook"})
HEALTH_PATH = "/healthz"
DISCARD_LIMIT = 8 * 1024 * 1024  # an oversized body is drained up to this, then the connection is closed

Emitter = Callable[[QuorumEvent], str]
"""Sends one event and returns its id; raises when the event was not accepted."""

log = logging.getLogger("quorum.github_webhook.server")


class WebhookServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the receiver's settings and its emitter."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: WebhookSettings, emitter: Emitter):
        super().__init__(address, _Handler)
        self.settings = settings
        self.emitter = emitter

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    server_version = "quorum-webhook"
    sys_version = ""
    timeout = 30  # seconds a client may stall mid-request before the connection is dropped

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._answer(200, {"status": "ok"})
        elif self.path in DELIVERY_PATHS:
            self._answer(405, {"error": "deliveries are POSTed"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path not in DELIVERY_PATHS:
            self._answer(404, {"error": "not found"}, close=True)
            return
        settings = self.server.settings
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._answer(411, {"error": "Content-Length required"}, close=True)
            return
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._answer(400, {"error": "invalid Content-Length"}, close=True)
            return
        if length > settings.max_body_bytes:  # refuse without keeping any of it
            self._discard(length)
            self._answer(413, {"error": f"body larger than {settings.max_body_bytes} bytes"}, close=True)
            return
        body = self.rfile.read(length)

        result = route_delivery(self.headers, body, settings)
        if result.event is None:
            self._answer(result.status, result.body)
            return
        try:
            event_id = self.server.emitter(result.event)
        except Exception as exc:  # Prefect down or refusing: say so, so GitHub marks the delivery failed
            event = result.event
            log.warning("could not emit %s for %s: %s", event.event, event.resource_id, type(exc).__name__)
            self._answer(503, {"error": f"could not deliver {result.event.event} to Prefect ({type(exc).__name__})"})
            return
        self._answer(result.status, {**result.body, "event_id": event_id})

    def do_PUT(self) -> None:
        self._answer(405, {"error": "method not allowed"}, close=True)

    do_DELETE = do_PATCH = do_PUT

    def _discard(self, length: int) -> None:
        """Read and drop up to DISCARD_LIMIT bytes, so the client reads our answer instead of a reset."""
        remaining = min(length, DISCARD_LIMIT)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _answer(self, status: int, body: dict, *, close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        # The request line and status only; headers (signatures) and bodies are never logged.
        log.info("%s %s", self.address_string(), format % args)


def make_server(
    settings: WebhookSettings, *, host: str = "127.0.0.1", port: int = 8088, emitter: Emitter = post_event
) -> WebhookServer:
    """A bound, not yet serving receiver (port 0 picks a free port; see `.url`)."""
    return WebhookServer((host, port), settings, emitter)


@contextmanager
def running_server(
    settings: WebhookSettings, *, host: str = "127.0.0.1", port: int = 0, emitter: Emitter = post_event
) -> Iterator[WebhookServer]:
    """A receiver serving in a background thread for the duration of the block (tests, embedding)."""
    server = make_server(settings, host=host, port=port, emitter=emitter)
    thread = threading.Thread(target=server.serve_forever, name="quorum-webhook", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def settings_from(args: argparse.Namespace, environ: dict[str, str]) -> WebhookSettings:
    """Settings from the command line and the environment; raises SystemExit with a clear message."""
    secret = environ.get(SECRET_ENV, "")
    if not secret.strip():
        raise SystemExit(
            f"quorum.github_webhook: refusing to start without a webhook secret: set {SECRET_ENV} to the secret "
            "configured on the GitHub webhook (unsigned deliveries are never accepted)"
        )
    try:
        return WebhookSettings(
            secret=SecretStr(secret),
            label=args.label or environ.get(LABEL_ENV) or DEFAULT_LABEL,
            max_body_bytes=args.max_body_bytes,
            allowed_repos=frozenset(args.allow_repo or ()),
        )
    except ValidationError as exc:
        raise SystemExit(f"quorum.github_webhook: invalid settings: {exc.errors()[0]['msg']}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m quorum.github_webhook",
        description=f"GitHub webhook receiver that emits quorum events to Prefect (secret from ${SECRET_ENV}).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8088, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--label", default=None, help=f"issue label that requests a task (default ${LABEL_ENV} or '{DEFAULT_LABEL}')"
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="larger deliveries get 413")
    parser.add_argument(
        "--allow-repo", action="append", metavar="OWNER/NAME", help="accept only these repositories (repeatable)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args, dict(os.environ))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = make_server(settings, host=args.host, port=args.port)
    api = os.environ.get("PREFECT_API_URL") or "the Prefect profile's API"
    print(f"quorum webhook listening on {server.url} (label {settings.label!r}, events to {api})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop` / Kubernetes: stop like Ctrl-C
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
