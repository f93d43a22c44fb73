"""A receiver of Grafana Pyroscope's HTTP ingest API (POST /ingest?name=APP.cpu{k=v,...}&from=..
&until=..&format=pprof&sampleRate=..&spyName=..), for the tests and the benchmark: a real HTTP
server on 127.0.0.1 that parses every request as Pyroscope would and keeps it. Its answers can
be scripted (status, Retry-After, a delay) to play a failing or slow server."""
from __future__ import annotations

import gzip
import http.server
import re
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

_KEY = re.compile(r"(?P<app>[^{]+)\{(?P<labels>[^}]*)\}\Z")


def parse_name(name: str) -> Tuple[str, Dict[str, str]]:
    """`app.cpu{k=v,k2=v2}` -> ("app.cpu", {...}), as Pyroscope's key parser reads it."""
    m = _KEY.match(name)
    if m is None:
        return name, {}
    labels = {}
    for pair in filter(None, m.group("labels").split(",")):
        k, eq, v = pair.partition("=")
        assert eq, f"label {pair!r} has no ="
        labels[k.strip()] = v.strip()
    return m.group("app"), labels


class Receiver:
    """`answer(request) -> (status, headers, delay_s)` decides each reply (default 200)."""

    def __init__(self, answer: Optional[Callable[[Dict[str, Any]], Tuple[int, Dict[str, str], float]]] = None) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.answer = answer or (lambda req: (200, {}, 0.0))
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                app, labels = parse_name(query.get("name", ""))
                req = {"path": parts.path, "query": query, "app": app, "labels": labels, "body": body,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "time": time.monotonic(),
                       "content_type": self.headers.get("Content-Type", "")}
                with receiver.lock:
                    req["index"] = len(receiver.requests)
                    receiver.requests.append(req)
                status, headers, delay = receiver.answer(req)
                if delay:
                    time.sleep(delay)
                if parts.path != "/ingest":
                    status = 404
                req["status"] = status
                payload = b"" if status == 200 else f"status {status}".encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def ok(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r.get("status") == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
