"""Keep numba's on-disk cache readable across changes to the types compiled code takes.

numba unpickles a cache index before it checks the index is fresh, so an index left by an
earlier checkout that names a type this code no longer defines (say ``ZoneType``, before the
zone became a borrowed handle) makes the first call raise instead of recompiling. Such an
index is stale by definition: removing it lets numba compile and cache afresh.
"""
import glob
import os
import pickle

import numba


def drop_unreadable_indexes(package_file):
    """Remove the numba cache indexes beside a package (``__pycache__/*.nbi``) that cannot be
    read by this numba; returns their paths. Indexes of other numba versions are left alone
    (numba ignores them itself)."""
    dropped = []
    pattern = os.path.join(os.path.dirname(os.path.abspath(package_file)), "__pycache__", "*.nbi")
    for path in glob.glob(pattern):
        try:
            with open(path, "rb") as f:
                if pickle.load(f) != numba.__version__:
                    continue
                pickle.loads(f.read())
        except FileNotFoundError:
            continue  # another process removed or replaced it meanwhile
        except Exception:  # noqa: BLE001 - whatever numba would trip on
            try:
                os.remove(path)
                dropped.append(path)
            except OSError:
                pass
    return dropped
