"""The HTTP endpoint of a node or worker: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves requests (liveness). ``/readyz`` runs
the readiness checks (broker reachable, spool writable) and answers 503 naming each one
that fails, so a load balancer or systemd watchdog script can act on it. The server runs
in a daemon thread and never touches the DICOM path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mammocad.logs import log_event

logger = logging.getLogger("mammocad.metrics")

#: A readiness check: returns None when fine, else a short reason.
Check = Callable[[], str | None]


class MetricsServer:
    """Serves ``registry`` and the health checks on ``host:port`` until :meth:`stop`."""

    def __init__(self, registry: Any, checks: dict[str, Check], host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry, self.checks = registry, checks
        try:
            self._httpd = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:  # name the [metrics] port, not the DICOM one
            raise OSError(exc.errno, f"metrics endpoint {host}:{port} ([metrics] settings): "
                                     f"{exc.strerror or exc}") from exc
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="mammocad-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        log_event(logger, "metrics_listening", host=self._httpd.server_address[0], port=self.port)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def readiness(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for name, check in self.checks.items():
            try:
                out[name] = check()
            except Exception as exc:  # a broken check is a failed check
                out[name] = f"{type(exc).__name__}: {exc}"
        return out

    def readiness_samples(self) -> bytes:
        """``mammocad_ready{check}`` 1/0, so Prometheus can alert on readiness without a prober."""
        lines = ["# HELP mammocad_ready 1 when the readiness check passes (what /readyz reports), else 0",
                 "# TYPE mammocad_ready gauge"]
        lines += [f'mammocad_ready{{check="{name}"}} {0 if failed else 1}' for name, failed in self.readiness().items()]
        return ("\n".join(lines) + "\n").encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

                    body = generate_latest(server.registry) + server.readiness_samples()
                    self._reply(200, body, CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._reply(200, b"ok\n")
                elif path == "/readyz":
                    results = server.readiness()
                    failed = {k: v for k, v in results.items() if v}
                    body = "".join(f"{k}: {v or 'ok'}\n" for k, v in results.items()).encode()
                    self._reply(503 if failed else 200, body)
                else:
                    self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
                """Scrapes every few seconds would flood the log: stay quiet."""

        return Handler
