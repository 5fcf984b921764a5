"""The smallest web component of `flowlord serve`: `GET /status` answers `ok`.

It fills the service's web slot (`Service(start_web=...)`) until the dashboard does, and gives
the dashboard a fallback server: `serve_wsgi(app, host, port)` runs any WSGI app in a daemon
thread on the standard library's threaded wsgiref server and returns `(stop, port)` (the port
actually bound, for a port of 0).
"""

from __future__ import annotations

import logging
import socketserver
import threading
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["serve_wsgi", "start_status_web", "status_app"]

log = logging.getLogger("flowlord.web")


def status_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """`GET /status` (or HEAD): 200 `ok`; anything else 404."""
    path = environ.get("PATH_INFO", "") or "/"
    method = environ.get("REQUEST_METHOD", "GET")
    if path.rstrip("/") == "/status" and method in ("GET", "HEAD"):
        body = b"ok"
        status = "200 OK"
    else:
        body = b"not found\n"
        status = "404 Not Found"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [b"" if method == "HEAD" else body]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("%s %s", self.address_string(), format % args)


def serve_wsgi(app: Callable, host: str, port: int, *, name: str = "flowlord-web"
               ) -> tuple[Callable[[], None], int]:
    """Serves `app` on host:port in a daemon thread. Raises OSError when it cannot listen.
    Returns `(stop, port)`; `stop()` closes the listening socket and waits for the thread."""
    httpd = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    bound = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              name=name, daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5.0)

    return stop, bound


def start_status_web(service: Any) -> Callable[[], None] | None:
    """The service's default web component: `status_app` on the settings' http_host and
    http_port (none when the port is 0)."""
    settings = service.settings
    host = getattr(settings, "http_host", "127.0.0.1")
    port = int(getattr(settings, "http_port", 0) or 0)
    if port == 0:
        return None
    stop, bound = serve_wsgi(status_app, host, port)
    log.info("web server on http://%s:%d (GET /status)", host, bound)
    return stop
