"""Run the fake provider in the foreground: `python -m tests.support.fake_provider --config X.yaml --port N`.

Prints the base URL on its first line of output (and writes it to --url-file when given), so a
benchmark in another process can start it on port 0 and read where it listens. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.support.fake_provider.config import FakeProviderConfig, load_config
from tests.support.fake_provider.server import FakeProviderServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_provider", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML file (FakeProviderConfig); default: every model answers 'ok'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--url-file", type=Path, help="write the base URL to this file once listening")
    args = parser.parse_args(argv)

    config = load_config(args.config) if args.config else FakeProviderConfig()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeProviderServer(config, host=args.host, port=args.port) as server:
        if args.url_file:  # complete before anyone is told the URL: written aside, then renamed
            partial = args.url_file.with_name(args.url_file.name + ".partial")
            partial.write_text(server.base_url + "\n")
            partial.replace(args.url_file)
        print(server.base_url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
