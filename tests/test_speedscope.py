"""The Speedscope file validates against speedscope's own schema, plus what it cannot check."""
import json
import threading
from pathlib import Path

import jsonschema

import spprof
from conftest import spin

# speedscope 1.25.0's own schema (dist/release/file-format-schema.json, MIT licence)
SCHEMA = Path(__file__).resolve().parent / "data" / "speedscope-file-format-schema.json"


def check(doc):
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    n_frames = len(doc["shared"]["frames"])
    for p in doc["profiles"]:
        assert len(p["samples"]) == len(p["weights"])
        assert all(w >= 0 for w in p["weights"])
        assert p["endValue"] >= p["startValue"]
        assert all(0 <= i < n_frames for stack in p["samples"] for i in stack)


def test_speedscope_file_is_valid_and_names_threads(tmp_path):
    spprof.start(interval_ms=1)
    t = threading.Thread(target=spin, args=(2_000_000,), name="helper")
    t.start()
    spin(2_000_000)
    t.join()
    profile = spprof.stop()
    path = tmp_path / "profile.json"
    profile.save(path)
    doc = json.loads(path.read_text())
    check(doc)
    names = [p["name"] for p in doc["profiles"]]
    assert any(n.startswith("MainThread (tid ") for n in names)
    assert any(n.startswith("helper (tid ") for n in names)
    assert doc["exporter"] == f"spprof {spprof.__version__}"
    frames = doc["shared"]["frames"]
    assert any(f["name"] == "spin" and f["file"] == spin.__code__.co_filename for f in frames)
    assert doc == profile.to_speedscope()


def test_empty_profile_is_valid(tmp_path):
    spprof.start(interval_ms=1000)
    profile = spprof.stop()
    doc = profile.to_speedscope()
    check(doc)
