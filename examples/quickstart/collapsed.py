# python collapsed.py > profile.collapsed; flamegraph.pl profile.collapsed > profile.svg
from _workload import expensive_computation

import spprof
spprof.start()
expensive_computation()  # ... workload ...
profile = spprof.stop()
print(profile.to_collapsed())
