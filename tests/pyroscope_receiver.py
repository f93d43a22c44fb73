"""A receiver of Grafana Pyroscope's HTTP push APIs, for the tests and the benchmark: a real HTTP
server on 127.0.0.1 that parses every request as Pyroscope would and keeps it. Its answers can
be scripted (status, Retry-After, a delay) to play a failing or slow server.

- POST /ingest?name=APP.cpu{k=v,...}&from=..&until=..&format=pprof&sampleRate=..&spyName=.. with
  the pprof as the body: the documented ingest API, which spprof uses;
- POST /push.v1.PusherService/Push (Connect protocol, a gzipped PushRequest protobuf: series of
  labels and raw pprof samples): what pyroscope-io 1.x sends. Both end up as the same record:
  the series' labels and the pprof body."""
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


def parse_push(body: bytes) -> Tuple[str, Dict[str, str], bytes]:
    """A PushRequest (push/v1/push.proto: series=1 {labels=1 {name=1, value=2}, samples=2
    {raw_profile=1}}) of one series: ("SERVICE.KIND", labels, the first raw pprof)."""
    from test_formats import read_message
    series = read_message(body)[1]
    assert len(series) == 1, "one series a request"
    s = read_message(series[0])
    labels = {}
    for raw in s[1]:
        pair = read_message(raw)
        labels[pair[1][0].decode()] = pair[2][0].decode() if 2 in pair else ""
    raw_profile = read_message(s[2][0])[1][0]
    kind = {"process_cpu": "cpu", "wall": "wall"}.get(labels.get("__name__", ""), labels.get("__name__", ""))
    return f"{labels.get('service_name', '')}.{kind}", labels, raw_profile


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
                if parts.path == "/push.v1.PusherService/Push":
                    app, labels, body = parse_push(body)
                else:
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
                if parts.path not in ("/ingest", "/push.v1.PusherService/Push"):
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
