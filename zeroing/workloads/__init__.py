"""Workload generators: each returns an EVENT_DTYPE array, deterministic for a seed."""
from .mixed import mixed
from .unaware import unaware_user

WORKLOADS = {"mixed": mixed, "unaware-user": unaware_user}


def make_workload(name, nr_pages, events, seed):
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}: choose from {', '.join(WORKLOADS)}")
    return WORKLOADS[name](nr_pages, events, seed)
