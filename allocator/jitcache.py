"""Keep numba's on-disk cache readable across changes to the types compiled code takes.

numba unpickles a cache index before it checks the index is fresh, so an index left by an
earlier checkout that names a type this code no longer defines (say ``ZoneType``, before the
zone became a borrowed handle) makes the first call raise instead of recompiling. Such an
index is stale by definition: removing it lets numba compile and cache afresh.

numba also checks an index only against its own source file, while a compiled function
embeds the compiled functions it calls from other modules: after ``pcp.py`` changes, the
cached ``core.free_pages`` (and the engine loop in ``zeroing``) would keep the old rules.
``drop_stale_indexes`` removes every index older than the newest source it may depend on.
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


def drop_stale_indexes(package_file, depends_on=()):
    """Remove the numba cache indexes beside a package that are older than any ``.py`` of
    the package or of the packages in ``depends_on`` (their ``__init__.py`` paths): numba
    then recompiles those functions with the current callees. Returns the removed paths."""
    newest = 0.0
    for pkg in (package_file, *depends_on):
        for src in glob.glob(os.path.join(os.path.dirname(os.path.abspath(pkg)), "*.py")):
            try:
                newest = max(newest, os.stat(src).st_mtime)
            except OSError:
                pass
    dropped = []
    pattern = os.path.join(os.path.dirname(os.path.abspath(package_file)), "__pycache__", "*.nbi")
    for path in glob.glob(pattern):
        try:
            if os.stat(path).st_mtime < newest:
                os.remove(path)
                dropped.append(path)
        except OSError:
            pass  # another process removed or replaced it meanwhile
    return dropped
