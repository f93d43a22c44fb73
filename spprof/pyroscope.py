"""The Grafana Pyroscope sink of continuous profiling: one `POST /ingest` per window, the body the
window's gzipped pprof, as Pyroscope's documented HTTP API (and Grafana Alloy's
`pyroscope.receive_http`, and Grafana Cloud) takes it from the language agents."""
from __future__ import annotations

import base64
import math
import re
import time
import urllib.parse
from typing import Dict, List, Mapping, Optional, Tuple

SPY_NAME = "spprof"

# Pyroscope's label rules (pkg/validation): Prometheus label names, at most 30 labels a series
# (the name and service_name among them), names to 1024 bytes, values to 2048. In the `name`
# parameter `{`, `}`, `,` and `=` are syntax, so no value may hold them.
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_APP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:]*\Z")
_VALUE_FORBIDDEN = re.compile(r"[{},=\"\\\s\x00-\x1f\x7f]")
_RESERVED = ("service_name", "__name__")
MAX_USER_TAGS = 25


def check_app_name(app_name: object) -> str:
    if not isinstance(app_name, str):
        raise TypeError(f"app_name must be a str, not {type(app_name).__name__}")
    if not _APP_NAME.match(app_name) or len(app_name) > 1024:
        raise ValueError(f"app_name {app_name!r} is not a valid application name: use letters, digits and "
                         "_ . - / : (starting with a letter, digit or _), at most 1024 characters")
    return app_name


def check_tags(tags: Mapping[object, object]) -> Dict[str, str]:
    """The tags as Pyroscope accepts them, or a ValueError that says which one is wrong and why."""
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a mapping of str to str, not {type(tags).__name__}")
    out: Dict[str, str] = {}
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"tag {name!r}={value!r}: names and values must be str")
        if not _LABEL_NAME.match(name) or name.startswith("__") or len(name) > 1024:
            raise ValueError(f"tag name {name!r} is not a valid Pyroscope label name: letters, digits and _, "
                             "not starting with a digit or __, at most 1024 characters")
        if name in _RESERVED:
            raise ValueError(f"tag name {name!r} is reserved by Pyroscope (the application name sets it)")
        if not value or len(value) > 2048 or _VALUE_FORBIDDEN.search(value):
            raise ValueError(f"tag {name}={value!r}: a value must be 1 to 2048 characters, without spaces, "
                             "control characters or any of { } , = \" \\")
        out[name] = value
    if len(out) > MAX_USER_TAGS:
        raise ValueError(f"{len(out)} tags: Pyroscope takes at most {MAX_USER_TAGS} besides its own")
    return out


def parse_tags(text: str) -> Dict[str, str]:
    """`env=prod,region=eu` (SPPROF_TAGS, --tag) as a dict; validated by check_tags()."""
    out: Dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"tag {item!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def check_url(url: object) -> str:
    """An http(s) URL of a Pyroscope server (or Alloy), refused with ValueError before anything starts."""
    if not isinstance(url, str):
        raise TypeError(f"push_url must be a str, not {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as e:
        raise ValueError(f"push_url {url!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"push_url {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"push_url {url!r} has no host")
    if parts.query or parts.fragment:
        raise ValueError(f"push_url {url!r} must not carry a query or fragment: spprof adds /ingest?...")
    if port == 0:
        raise ValueError(f"push_url {url!r} has port 0")
    if any(c.isspace() for c in url):
        raise ValueError(f"push_url {url!r} holds white space")
    return url


def series_name(app_name: str, clock: str, tags: Mapping[str, str]) -> str:
    """`APP.cpu{k=v,...}`: the profile's series in Pyroscope's key syntax, tags sorted."""
    return f"{app_name}.{clock}{{" + ",".join(f"{k}={tags[k]}" for k in sorted(tags)) + "}"


class SendError(Exception):
    """A push that failed. `retry` says whether the same window may succeed later; `after` is the
    wait the server asked for (429's Retry-After), in seconds, or None."""

    def __init__(self, message: str, retry: bool, after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry, self.after = retry, after


def _retry_after(value: Optional[str]) -> Optional[float]:
    import email.utils
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class PyroscopeSink:
    """Sends one window a call; raises SendError. Used by the continuous session's sender thread only."""

    def __init__(self, url: str, app_name: str, tags: Mapping[str, str], *, basic_auth: Optional[Tuple[str, str]] = None,
                 token: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                 timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/ingest"
        self.app_name, self.tags = app_name, dict(tags)
        self.timeout_s = timeout_s
        self.headers: Dict[str, str] = {"Content-Type": "application/octet-stream",
                                        "User-Agent": f"spprof/{_version()}"}
        if basic_auth is not None:
            raw = f"{basic_auth[0]}:{basic_auth[1]}".encode("utf-8")
            self.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        elif token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.headers.update(headers or {})
        import ssl  # here, not at import: spprof's own import stays light
        self._context = ssl.create_default_context() if url.startswith("https:") else None
        parts = urllib.parse.urlsplit(url)  # named in messages without its credentials
        self.describe = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else "")).geturl()

    def query(self, clock: str, from_unix_ns: int, until_unix_ns: int, interval_ms: float) -> str:
        # Pyroscope takes whole unix seconds; the pprof carries the exact times.
        start = from_unix_ns // 1_000_000_000
        until = max(until_unix_ns // 1_000_000_000, start + 1)
        return urllib.parse.urlencode({
            "name": series_name(self.app_name, clock, self.tags),
            "from": start, "until": until, "format": "pprof",
            "sampleRate": sample_rate_of(interval_ms), "spyName": SPY_NAME,
        })

    def send(self, body: bytes, clock: str, from_unix_ns: int, until_unix_ns: int, interval_ms: float,
             timeout_s: Optional[float] = None) -> None:
        import socket
        import ssl
        import urllib.error
        import urllib.request
        request = urllib.request.Request(f"{self.url}?{self.query(clock, from_unix_ns, until_unix_ns, interval_ms)}",
                                         data=body, method="POST", headers=self.headers)
        timeout = self.timeout_s if timeout_s is None else max(0.05, timeout_s)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context) as response:
                response.read(65536)
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                detail = e.read(300).decode("utf-8", "replace").strip()
            except Exception:
                detail = ""
            message = f"HTTP {status} from {self.describe}" + (f": {detail}" if detail else "")
            if status == 429:
                raise SendError(message, True, _retry_after(e.headers.get("Retry-After"))) from None
            # Another 4xx says the window itself is refused: sending it again changes nothing.
            raise SendError(message, not 400 <= status < 500) from None
        except (urllib.error.URLError, OSError, socket.timeout, ssl.SSLError) as e:
            reason = getattr(e, "reason", e)
            raise SendError(f"cannot reach {self.describe}: {reason}", True) from None


def _version() -> str:
    from ._version import __version__
    return __version__


def sample_rate_of(interval_ms: float) -> int:
    return max(1, round(1000 / interval_ms))


__all__: List[str] = ["PyroscopeSink", "SendError", "check_app_name", "check_tags", "check_url", "parse_tags",
                      "series_name"]
