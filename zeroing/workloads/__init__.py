"""Workload generators: each returns an EVENT_DTYPE array, deterministic for a seed.

``WORKLOADS[name]`` is (function, params): params maps each parameter (a CLI option
``--name-with-dashes`` and a config key) to its type. Every generator takes ``nr_pages`` and
``seed``. ``iter_workload`` gives the same events a chunk at a time (compiled generators,
``gen.py``), so a run of 10^8 events holds one chunk; ``zeroing.streaming`` feeds them.

A custom generator: any iterable of EVENT_DTYPE chunks whose free/deflate ``ref`` is a row
number in the whole stream (``gen.chunked(array)`` cuts one array so); register it in
``WORKLOADS`` and ``CHUNKED`` to get the CLI options and config keys for free.
"""
import inspect

from allocator.flags import HPAGE_PMD_ORDER

from ..struct_page import parse_caller_mix
from ..validate import MAX_EVENTS
from .mixed import mixed, mixed_chunks
from .scenarios import (balloon_cycle, balloon_cycle_chunks, kernel_build, kernel_build_chunks,
                        page_cache_churn, page_cache_churn_chunks, vm_anon, vm_anon_chunks)
from .unaware import unaware_user, unaware_user_chunks


def _on_off(value):
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("on", "1", "true", "yes"):
        return True
    if str(value).lower() in ("off", "0", "false", "no"):
        return False
    raise ValueError(f"expected on or off, got {value!r}")


WORKLOADS = {
    "mixed": (mixed, {"events": int}),
    "unaware-user": (unaware_user, {"events": int, "callers": parse_caller_mix}),
    "vm-anon": (vm_anon, {"thp": _on_off, "size_mb": int, "rounds": int, "idle_s": float,
                          "noise": float, "touch": float}),
    "kernel-build": (kernel_build, {"jobs": int, "files_per_job": int}),
    "page-cache-churn": (page_cache_churn, {"passes": int, "file_fraction": float}),
    "balloon-cycle": (balloon_cycle, {"cycles": int, "balloon_fraction": float, "idle_s": float}),
}
#: The chunked form of each workload: same parameters, plus ``chunk`` (rows per chunk).
CHUNKED = {
    "mixed": mixed_chunks,
    "unaware-user": unaware_user_chunks,
    "vm-anon": vm_anon_chunks,
    "kernel-build": kernel_build_chunks,
    "page-cache-churn": page_cache_churn_chunks,
    "balloon-cycle": balloon_cycle_chunks,
}
ALL_PARAMS = sorted({p for _, params in WORKLOADS.values() for p in params})


def default_pages(name):
    """The zone size a workload is written for (vm-anon: a 2 GiB guest)."""
    fn, _ = WORKLOADS[name]
    return inspect.signature(fn).parameters["nr_pages"].default


def make_workload(name, nr_pages=None, events=None, seed=0, **params):
    """Build a workload; unknown names, parameters or values raise ValueError naming them."""
    fn, kwargs = _workload_call(name, nr_pages, events, params)
    return fn(seed=seed, **kwargs)


def iter_workload(name, nr_pages=None, events=None, seed=0, chunk=1 << 20, reuse=False,
                  **params):
    """The events of ``make_workload(...)``, ``chunk`` rows at a time (refs are stream rows).
    ``reuse``: each chunk is a view the next one overwrites (no copy; for ``streaming``).
    Bad names and parameters raise ValueError here, before any event is made."""
    _, kwargs = _workload_call(name, nr_pages, events, params)
    return CHUNKED[name](seed=seed, chunk=chunk, reuse=reuse, **kwargs)


def _workload_call(name, nr_pages, events, params):
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}: choose from {', '.join(WORKLOADS)}")
    if events is not None:
        params["events"] = events
    kwargs = convert_params(name, params)
    check_together(name, kwargs, nr_pages)
    if nr_pages is not None:
        kwargs["nr_pages"] = nr_pages
    return WORKLOADS[name][0], kwargs


def convert_params(name, params, spell=None):
    """``params`` converted by the workload's own parsers, None values dropped. A ValueError
    names the parameter as ``spell(key)`` (by default the workload and the key)."""
    spec = WORKLOADS[name][1]
    spell = spell or (lambda k: f"workload {name!r} parameter {k!r}")
    kwargs = {}
    for key, value in params.items():
        if value is None:
            continue
        if key not in spec:
            raise ValueError(f"{spell(key)}: workload {name!r} has no such parameter "
                             f"(it takes: {', '.join(spec) or 'none'})")
        try:
            kwargs[key] = spec[key](value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{spell(key)}: {value!r} is not allowed: {e}") from None
    return kwargs


#: Why a vm-anon size makes more events in a smaller zone.
FALLBACK = " (THP faults the zone cannot hold fall back to 512 4 KiB faults each)"
#: The most idle time a workload may ask for in all, seconds (1e8 s: 1e8 tick events).
MAX_IDLE_S = 1e8



def estimated_events(name, given, nr_pages):
    """About how many events a workload's parameters make (``given``: all of them); from
    counts measured on each generator (2026-11-27), to refuse sizes that would run for hours
    or days before they start. None where it depends on the zone and that is not known."""
    if name == "vm-anon":
        faults = given["size_mb"] * 256  # 4 KiB each
        if given["thp"]:  # 2 MiB each, but those the zone cannot hold fall back to 4 KiB pages
            thps = given["size_mb"] // 2
            held = thps if nr_pages is None else min(thps, nr_pages >> HPAGE_PMD_ORDER)
            faults = held + (thps - held) * (1 << HPAGE_PMD_ORDER)
        return given["rounds"] * 2 * faults * (1 + given["noise"])
    if name == "kernel-build":  # about 550 allocations and frees a job, 1 more a file
        return given["jobs"] * (550 + given["files_per_job"])
    if name == "page-cache-churn":  # about one event a page a pass
        return None if nr_pages is None else given["passes"] * nr_pages
    if name == "balloon-cycle":  # inflate, deflate and refault the balloon each cycle
        return None if nr_pages is None else \
            given["cycles"] * 3 * given["balloon_fraction"] * nr_pages
    return given.get("events")


def check_together(name, kwargs, nr_pages=None):
    """Parameters each allowed alone but not together: ValueError saying why. With
    ``nr_pages``, also what depends on the zone's size."""
    import inspect
    given = {k: v.default for k, v in inspect.signature(WORKLOADS[name][0]).parameters.items()}
    given.update(kwargs)
    events = estimated_events(name, given, nr_pages)
    fallback = name == "vm-anon" and events != estimated_events(name, given, None)
    if events is not None and events > MAX_EVENTS:
        shown = ", ".join(f"{k} {('on' if v else 'off') if isinstance(v, bool) else v}"
                          for k, v in kwargs.items() if k not in ("seed", "noise"))
        raise ValueError(f"{shown}{' on ' + str(nr_pages) + ' pages' if nr_pages else ''} "
                         f"make about {events:.2g} events{FALLBACK if fallback else ''}: at "
                         f"most {MAX_EVENTS} (2^31 - 1, as --events)")
    if name == "vm-anon" and given["thp"] and given["size_mb"] % 2:
        # Simplification: the kernel faults the part of a region past its last 2 MiB boundary
        # as 4 KiB pages; this workload has one fault order, so it takes whole THPs only.
        raise ValueError(f"size_mb {given['size_mb']} with thp on: give whole 2 MiB THPs "
                         "(an even size_mb)")
    if name == "vm-anon" and not given["thp"] and given["touch"] != 1:
        raise ValueError(f"touch {given['touch']:g} has no effect with thp off: each fault is "
                         "one 4 KiB page, which the program writes")
    repeats = {"vm-anon": "rounds", "balloon-cycle": "cycles"}.get(name)
    if repeats and given[repeats] * given["idle_s"] > MAX_IDLE_S:
        # Each idle second is a tick event (the vmstat worker, reporting's delayed work).
        raise ValueError(f"{repeats} {given[repeats]} x idle_s {given['idle_s']:g} is "
                         f"{given[repeats] * given['idle_s']:.3g} s idle: at most {MAX_IDLE_S:.0e} "
                         "s (a tick event a second; simulated nanoseconds must fit int64)")
