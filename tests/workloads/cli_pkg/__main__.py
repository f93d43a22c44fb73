import json
import sys

print(json.dumps({"argv": sys.argv, "name": __name__, "package": __package__, "path0": sys.path[0]}), flush=True)
sys.exit(6)
