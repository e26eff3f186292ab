"""Workload generators: each returns an EVENT_DTYPE array, deterministic for a seed.

``WORKLOADS[name]`` is (function, params): params maps each parameter (a CLI option
``--name-with-dashes`` and a config key) to its type. Every generator takes ``nr_pages`` and
``seed``.
"""
import inspect

from ..struct_page import parse_caller_mix
from .mixed import mixed
from .scenarios import balloon_cycle, kernel_build, page_cache_churn, vm_anon
from .unaware import unaware_user


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
                          "noise": float}),
    "kernel-build": (kernel_build, {"jobs": int, "files_per_job": int}),
    "page-cache-churn": (page_cache_churn, {"passes": int, "file_fraction": float}),
    "balloon-cycle": (balloon_cycle, {"cycles": int, "balloon_fraction": float, "idle_s": float}),
}
ALL_PARAMS = sorted({p for _, params in WORKLOADS.values() for p in params})


def default_pages(name):
    """The zone size a workload is written for (vm-anon: a 2 GiB guest)."""
    fn, _ = WORKLOADS[name]
    return inspect.signature(fn).parameters["nr_pages"].default


def make_workload(name, nr_pages=None, events=None, seed=0, **params):
    """Build a workload; unknown names, parameters or values raise ValueError naming them."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}: choose from {', '.join(WORKLOADS)}")
    fn, spec = WORKLOADS[name]
    if events is not None:
        params["events"] = events
    kwargs = {}
    for key, value in params.items():
        if value is None:
            continue
        if key not in spec:
            raise ValueError(f"workload {name!r} has no parameter {key!r} "
                             f"(it takes: {', '.join(spec) or 'none'})")
        try:
            kwargs[key] = spec[key](value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"workload {name!r} parameter {key!r}: bad value {value!r} ({e})") from None
    if nr_pages is not None:
        kwargs["nr_pages"] = nr_pages
    return fn(seed=seed, **kwargs)
