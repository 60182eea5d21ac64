"""One front-end process: the HTTP server (``server/api`` unchanged) on a ``SO_REUSEPORT``
socket shared with the other front ends, built with the remote registry and service."""

from __future__ import annotations

import argparse
import logging
import sys

from server.app import create_app
from server.cli import LOG_FORMAT, limit_tokenizer_threads
from server.cluster.remote import remote_state
from server.cluster.sockets import reuseport_socket
from server.http_server import serve
from server.lifecycle import Lifecycle
from server.settings import Settings

log = logging.getLogger("sluice.frontend")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluice-frontend")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    settings = Settings.model_validate_json(sys.stdin.read())
    # one metrics port per host: the first front end's (a restarted one takes it back)
    settings = settings.model_copy(update={
        "port": args.port, "metrics_port": settings.metrics_port if args.index == 0 else 0})
    logging.basicConfig(level=settings.log_level.upper(),
                        format=LOG_FORMAT.replace("%(name)s", f"%(name)s[fe{args.index}]"))
    limit_tokenizer_threads(settings.tokenizer_threads)
    lifecycle = Lifecycle(shutdown_delay_s=settings.shutdown_delay_s)
    state = remote_state(settings, lifecycle, args.index, args.endpoint)
    app = create_app(settings, lifecycle, state=state)
    sock = reuseport_socket(settings.host, args.port)
    # uvicorn logs no "running on" line for sockets it is handed; tools wait for this one
    scheme = "https" if settings.ssl_certfile else "http"
    log.info("Uvicorn running on %s://%s:%d (front end %d, SO_REUSEPORT)", scheme,
             settings.host, args.port, args.index)
    return serve(app, settings, lifecycle, sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
