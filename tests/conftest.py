import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import zeroing  # noqa: E402  (its import drops stale numba cache indexes before tests compile)

del zeroing
