import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import zeroing  # noqa: E402,F401  (drops stale numba cache indexes before any test compiles)
