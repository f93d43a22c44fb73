"""The output formats, one module each: NAME, EXTENSIONS (lower case, most specific first) and
write(profile, path). Importing this package (spprof does) registers them, so Profile.save finds
them by name or by the path's extension without the model importing any exporter."""
from __future__ import annotations

from .._format_registry import FORMATS, format_for, register
from . import chrome_trace, collapsed, html, pprof, speedscope

for _module in (speedscope, collapsed, pprof, chrome_trace, html):
    register(_module)

__all__ = ["FORMATS", "format_for", "chrome_trace", "collapsed", "html", "pprof", "speedscope"]
