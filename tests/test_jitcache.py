"""Stale numba cache indexes are dropped instead of failing the first compiled call."""
import pickle

import numba

from allocator.jitcache import drop_stale_indexes, drop_unreadable_indexes


def write_index(path, version, data):
    with open(path, "wb") as f:
        pickle.dump(version, f, protocol=-1)
        f.write(data)


def test_only_unreadable_indexes_of_this_numba_are_dropped(tmp_path):
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    init = tmp_path / "__init__.py"
    init.write_text("")
    # What an earlier checkout left: an index naming a type this code no longer defines.
    stale = cache / "core.boot_free-660.py311.nbi"
    write_index(stale, numba.__version__, b"callocator.state\nZoneType\n.")
    fresh = cache / "core.alloc_pages-700.py311.nbi"
    write_index(fresh, numba.__version__, pickle.dumps(((1.0, 100), {}), protocol=-1))
    other = cache / "core.expand-300.py311.nbi"
    write_index(other, "0.1.0", b"callocator.state\nZoneType\n.")
    assert drop_unreadable_indexes(str(init)) == [str(stale)]
    assert not stale.exists() and fresh.exists() and other.exists()
    assert drop_unreadable_indexes(str(init)) == []


def test_no_cache_folder_is_fine(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    assert drop_unreadable_indexes(str(tmp_path / "__init__.py")) == []


def test_indexes_older_than_a_callee_source_are_dropped(tmp_path):
    import os
    pkg, dep = tmp_path / "pkg", tmp_path / "dep"
    for d in (pkg, dep):
        (d / "__pycache__").mkdir(parents=True)
        (d / "__init__.py").write_text("")
    old = pkg / "__pycache__" / "core.free_pages-1.py311.nbi"
    new = pkg / "__pycache__" / "core.alloc_pages-2.py311.nbi"
    for f in (old, new):
        f.write_bytes(b"x")
    os.utime(old, (1000, 1000))
    os.utime(pkg / "__init__.py", (2000, 2000))
    os.utime(new, (3000, 3000))
    os.utime(dep / "__init__.py", (2500, 2500))
    assert drop_stale_indexes(str(pkg / "__init__.py"), (str(dep / "__init__.py"),)) == [str(old)]
    assert new.exists()
    os.utime(dep / "__init__.py", (4000, 4000))  # a callee in another package changed
    assert drop_stale_indexes(str(pkg / "__init__.py"), (str(dep / "__init__.py"),)) == [str(new)]


def test_workload_caches_are_checked_against_their_helpers():
    """A compiled generator embeds gen.py's and pcg64.py's helpers: an index older than them
    is dropped when zeroing is imported (numba checks only the generator's own file)."""
    import importlib
    import os
    import pickle

    import numba

    import zeroing
    cache = os.path.join(os.path.dirname(zeroing.WORKLOADS), "__pycache__")
    os.makedirs(cache, exist_ok=True)
    stale = os.path.join(cache, "test_jitcache.stale-1.py311.nbi")
    with open(stale, "wb") as f:
        f.write(pickle.dumps(numba.__version__) + pickle.dumps(((), {})))  # a readable index
    try:
        os.utime(stale, (1000, 1000))  # older than every source
        importlib.reload(zeroing)
        assert not os.path.exists(stale)
    finally:
        if os.path.exists(stale):
            os.remove(stale)
