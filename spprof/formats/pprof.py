"""pprof's profile.proto (github.com/google/pprof/proto/profile.proto), gzipped, for
`go tool pprof`. A small protobuf writer of our own: only varints and length-delimited fields."""
from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Dict, List, Tuple

from .._model import TASK_FILE
from .._tables import tables

if TYPE_CHECKING:
    from .._model import Profile

NAME = "pprof"
EXTENSIONS = (".pb.gz", ".pprof")

# Field numbers of profile.proto
_PROFILE_SAMPLE_TYPE, _PROFILE_SAMPLE, _PROFILE_MAPPING, _PROFILE_LOCATION = 1, 2, 3, 4
_PROFILE_FUNCTION, _PROFILE_STRING_TABLE, _PROFILE_TIME_NANOS, _PROFILE_DURATION_NANOS = 5, 6, 9, 10
_PROFILE_PERIOD_TYPE, _PROFILE_PERIOD, _PROFILE_COMMENT, _PROFILE_DEFAULT_SAMPLE_TYPE = 11, 12, 13, 14
_VARINT, _LEN = 0, 2


_ONE_BYTE = [bytes([i]) for i in range(128)]


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _ONE_BYTE[n]
    n &= 0xFFFFFFFFFFFFFFFF  # int64 fields: a negative number is its 64-bit two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(field: int, n: int) -> bytes:
    # proto3 leaves zeros out
    return _varint(field << 3 | _VARINT) + _varint(n) if n else b""


def _bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LEN) + _varint(len(payload)) + payload


def _packed(field: int, numbers: List[int]) -> bytes:
    return _bytes(field, b"".join(map(_varint, numbers))) if numbers else b""


class _Strings:
    """The string table: index 0 is always ""."""

    def __init__(self) -> None:
        self.index: Dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.index)
        return i

    def encode(self) -> bytes:
        return b"".join(_bytes(_PROFILE_STRING_TABLE, s.encode("utf-8", "backslashreplace")) for s in self.index)


def to_bytes(profile: "Profile", *, thread_name_label: bool = False) -> bytes:
    """The profile as an uncompressed profile.proto message. `thread_name_label`: each sample's
    one label is `thread_name`, a name Pyroscope accepts as a label (continuous profiling)."""
    tab = tables(profile)
    strings = _Strings()
    clock = "wall" if profile.mode == "wall" else "cpu"
    out: List[bytes] = []

    def value_type(field: int, type_: str, unit: str) -> bytes:
        return _bytes(field, _int(1, strings(type_)) + _int(2, strings(unit)))

    out.append(value_type(_PROFILE_SAMPLE_TYPE, "samples", "count"))
    out.append(value_type(_PROFILE_SAMPLE_TYPE, clock, "nanoseconds"))

    # Functions and locations: one per distinct (name, file, first line) and (function, line),
    # only for the frames some sample uses (a trimmed profile keeps frames no sample has left).
    function_ids: Dict[Tuple[str, str, int], int] = {}
    symbol_function: Dict[int, int] = {}
    location_ids: Dict[Tuple[int, int], int] = {}
    frame_location: Dict[int, int] = {}

    def function_of(symbol: int) -> int:
        fid = symbol_function.get(symbol)
        if fid is None:
            name, filename, first_line = tab.symbols[symbol]
            fid = function_ids.get((name, filename, first_line))
            if fid is None:
                fid = function_ids[(name, filename, first_line)] = len(function_ids) + 1
                # No system_name: pprof would "demangle" a name equal to it and cut `<module>` to nothing.
                out.append(_bytes(_PROFILE_FUNCTION, _int(1, fid) + _int(2, strings(name))
                                  + _int(4, strings(filename)) + _int(5, first_line)))
            symbol_function[symbol] = fid
        return fid

    def location_of(frame: int) -> int:
        lid = frame_location.get(frame)
        if lid is None:
            symbol, line = tab.frames[frame]
            key = (function_of(symbol), line)
            lid = location_ids.get(key)
            if lid is None:
                lid = location_ids[key] = len(location_ids) + 1
                # mapping 1 says the names are resolved already, so pprof looks for no binary
                out.append(_bytes(_PROFILE_LOCATION, _int(1, lid) + _int(2, 1)
                                  + _bytes(4, _int(1, key[0]) + _int(2, line))))
            frame_location[frame] = lid
        return lid

    out.append(_bytes(_PROFILE_MAPPING, _int(1, 1) + _int(5, strings("python")) + _int(7, 1) + _int(8, 1) + _int(9, 1)))

    if thread_name_label:
        thread_labels = [_bytes(3, _int(1, strings("thread_name")) + _int(2, strings(name)))
                         for _, _, name in tab.threads]
    else:
        thread_labels = [
            _bytes(3, _int(1, strings("thread id")) + _int(3, native_id))
            + _bytes(3, _int(1, strings("thread name")) + _int(2, strings(name)))
            for _, native_id, name in tab.threads
        ]

    # Each sample's asyncio task, the innermost task frame of its stack, as a `task` label and its
    # id() as `task_id`; not for Pyroscope, where every label value is a series of its own and
    # tasks come by the thousand.
    task_labels: Dict[int, bytes] = {}

    def task_label(stack: int) -> bytes:
        label = task_labels.get(stack)
        if label is None:
            label = b""
            for f in reversed(tab.stacks[stack]):
                name, filename, _ = tab.symbols[tab.frames[f][0]]
                if filename == TASK_FILE:
                    label = _bytes(3, _int(1, strings("task")) + _int(2, strings(name)))
                    task_id = tab.stack_tasks[stack] if tab.stack_tasks else 0
                    if task_id:
                        label += _bytes(3, _int(1, strings("task_id")) + _int(3, task_id))
                    break
            task_labels[stack] = label
        return label

    # Samples of the same stack in the same thread become one: the file stays small.
    counts: Dict[Tuple[int, int], int] = Counter(zip(tab.stack, tab.thread))
    w = tab.weight_ns
    if w and min(w) == max(w):  # wall mode: every sample weighs one interval, no loop needed
        weights = {key: n * w[0] for key, n in counts.items()}
    else:
        weights = defaultdict(int)
        for key, ns in zip(zip(tab.stack, tab.thread), w):
            weights[key] += ns
    stack_locations: Dict[int, bytes] = {}
    for (stack, thread), n in counts.items():
        locs = stack_locations.get(stack)
        if locs is None:  # pprof wants the leaf first
            locs = stack_locations[stack] = _packed(1, [location_of(f) for f in reversed(tab.stacks[stack])])
        labels = thread_labels[thread] + (b"" if thread_name_label else task_label(stack))
        out.append(_bytes(_PROFILE_SAMPLE, locs + _packed(2, [n, weights[stack, thread]]) + labels))

    out.append(value_type(_PROFILE_PERIOD_TYPE, clock, "nanoseconds"))
    out.append(_int(_PROFILE_PERIOD, tab.interval_ns))
    out.append(_int(_PROFILE_TIME_NANOS, tab.start_unix_ns))
    out.append(_int(_PROFILE_DURATION_NANOS, max(0, tab.end_ns - tab.start_ns)))
    out.append(_int(_PROFILE_DEFAULT_SAMPLE_TYPE, strings(clock)))
    out.append(_int(_PROFILE_COMMENT, strings(f"spprof {profile.mode} mode, {profile.interval_ms:g} ms, "
                                               f"Python {profile.python_version}, {profile.platform}")))
    # The string table last: every string above is in it by now.
    out.append(strings.encode())
    return b"".join(out)


def to_gzip(profile: "Profile", *, thread_name_label: bool = False) -> bytes:
    return gzip.compress(to_bytes(profile, thread_name_label=thread_name_label), compresslevel=6, mtime=0)


def write(profile: "Profile", path: str) -> None:
    with open(path, "wb") as f:
        f.write(to_gzip(profile))
