"""spprof used inside a legacy sub-interpreter: a clear error, never a silent profile of the main
interpreter. argv[1]: "sub_first" (the sub-interpreter imports spprof first), "main_first" (the
main interpreter imported it before). Prints what happened there. (The native module itself
cannot be loaded in a sub-interpreter: pybind11's set-up deadlocks taking the GIL there.)"""
import json
import os
import sys
import tempfile

code = r'''
import json, os
out = {}
try:
    import spprof
except BaseException as e:
    out["import_error"] = type(e).__name__ + ": " + str(e)
else:
    try:
        spprof.start(interval_ms=1)
    except BaseException as e:
        out["start_error"] = type(e).__name__ + ": " + str(e)
    else:
        out["started"] = True
        total = 0
        for i in range(300000):
            total += i
        out["samples"] = len(spprof.stop().samples)
with open(os.environ["SPPROF_SUB_OUT"], "w") as f:
    json.dump(out, f)
'''

mode = sys.argv[1]
if mode == "main_first":
    import spprof  # noqa: F401
fd, path = tempfile.mkstemp()
os.close(fd)
os.environ["SPPROF_SUB_OUT"] = path
try:
    import _interpreters  # 3.13+
    interp = _interpreters.create("legacy")
    _interpreters.run_string(interp, code)
    _interpreters.destroy(interp)
except ImportError:
    import _xxsubinterpreters as _interpreters  # 3.9-3.12
    try:
        interp = _interpreters.create(isolated=False)
    except TypeError:
        interp = _interpreters.create()
    _interpreters.run_string(interp, code)
    _interpreters.destroy(interp)
with open(path) as f:
    out = json.load(f)
os.unlink(path)
import spprof  # noqa: E402
out["main_active"] = spprof.is_active()
print(json.dumps(out))
