"""Zeroing policies: named presets built from switches, composed by union.

Policies are data (an int array read inline by the compiled engine), not callbacks.
"""
import dataclasses

import numpy as np

from allocator.flags import PAGEBLOCK_ORDER

from .cost import OFFLOAD_DEVICES

HINTS = ("pghint", "lru_bit", "folio_flag")
FREE_SIGNALS = ("fpi", "page_bit")
PFMEMALLOC = ("assign", "or")


@dataclasses.dataclass
class Policy:
    """The switches a run is made of (all off is the ``baseline``)."""

    init_on_free: bool = False  # clear in free_pages_prepare, PG_zeroed set when tracking
    init_on_alloc: bool = False  # clear in post_alloc_hook for every allocation
    track: bool = False  # PG_zeroed: remember zeroed free blocks, skip clears on the hint
    balloon: bool = False  # deflated pages come back with FPI_ZEROED (host zeroed them)
    reporting: bool = False  # free page reporting; the host zeroes reported blocks (the guest
    # learns of it only with track: ``reporting`` alone is the upstream baseline)
    hint: str = "pghint"  # how the allocator returns the hint
    free_signal: str = "fpi"  # how a freer says "zero": FPI_ZEROED or a bit on the page
    pfmemalloc: str = "or"  # lru_bit only: 'assign' loses the hint in prep_new_page
    aliasing_cache: bool = False  # clear_user_highpage path instead of __GFP_ZERO faults
    offload: bool = False  # background zeroer: isolate dirty free blocks, clear them in batches
    zeroed_aware: bool = False  # beyond the kernel: __GFP_ZERO prefers zeroed blocks, others dirty
    reporting_order: int = PAGEBLOCK_ORDER  # page_reporting_order's default
    reporting_delay_ns: int = 2_000_000_000
    offload_batch_pages: int = 0  # pages per offload batch (one launch); 0: the device profile's
    offload_device: str = "cpu"  # which [offload.*] device of the cost profile does the work
    offload_watermark: float = 0.05  # run when dirty free pages exceed this fraction of the zone
    offload_period_ns: int = 100_000_000

    def validate(self):
        for name, allowed in (("hint", HINTS), ("free_signal", FREE_SIGNALS),
                              ("pfmemalloc", PFMEMALLOC)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name.replace('_', '-')} {getattr(self, name)!r}: "
                                 f"choose one of {', '.join(allowed)}")
        if self.offload_device not in OFFLOAD_DEVICES:
            raise ValueError(f"unknown offload-device {self.offload_device!r}: choose one of "
                             f"{', '.join(OFFLOAD_DEVICES)}")
        if self.offload_batch_pages < 0 or not 0 <= self.offload_watermark <= 1 \
                or self.offload_period_ns < 1 or self.reporting_delay_ns < 1:
            raise ValueError("offload batch and periods must be positive, the watermark in 0..1")
        if self.offload and not self.track:
            raise ValueError("offload needs a tracking policy: without PG_zeroed its work is lost")
        # Without PG_zeroed the kernel has no FPI_ZEROED to pass and nothing to place by.
        for switch in ("balloon", "zeroed_aware"):
            if getattr(self, switch) and not self.track:
                raise ValueError(f"{switch} needs a tracking policy (pg_zeroed): without "
                                 "PG_zeroed it has nothing to say zeroed")
        if self.free_signal == "page_bit" and not self.track:
            raise ValueError("--free-signal page_bit needs a tracking policy (pg_zeroed)")
        return self


PRESETS = {
    "baseline": {},
    "init_on_free": {"init_on_free": True},
    "init_on_alloc": {"init_on_alloc": True},
    "pg_zeroed": {"track": True},
    "balloon": {"track": True, "balloon": True},
    # Reporting alone: the host zeroes what it is given, the guest keeps no PG_zeroed and skips
    # nothing (upstream before the series). ``pg_zeroed,reporting`` adds the tracking.
    "reporting": {"reporting": True},
    "offload": {"track": True, "offload": True},
    "zeroed_aware": {"track": True, "zeroed_aware": True},
}


def make_policy(names, **options):
    """Union of the presets named (a list or 'a,b'), then explicit options on top."""
    if isinstance(names, str):  # "a, b" as validate.check_policy_names takes it
        spec, names = names, [n.strip() for n in names.split(",") if n.strip()]
        if not names:
            raise ValueError(f"policy {spec!r} names no preset: choose from "
                             f"{', '.join(PRESETS)}")
    switches = {}
    for name in names:
        if name not in PRESETS:
            raise ValueError(f"unknown policy {name!r}: choose from {', '.join(PRESETS)}")
        switches.update(PRESETS[name])
    switches.update({k: v for k, v in options.items() if v is not None})
    return Policy(**switches).validate()


# Indices of the int array the engine reads.
P_INIT_ON_FREE, P_INIT_ON_ALLOC, P_TRACK, P_BALLOON, P_REPORTING, P_HINT, P_FREE_SIGNAL, \
    P_PFMEMALLOC, P_ALIASING, P_REPORTING_ORDER, P_REPORTING_DELAY, P_OFFLOAD, P_ZEROED_AWARE, \
    P_OFFLOAD_BATCH, P_OFFLOAD_WATERMARK, P_OFFLOAD_PERIOD = range(16)
NR_POLICY = 16
HINT_PGHINT, HINT_LRU_BIT, HINT_FOLIO_FLAG = range(3)


def as_array(policy, nr_pages):
    p = np.zeros(NR_POLICY, dtype=np.int64)
    p[P_INIT_ON_FREE] = policy.init_on_free
    p[P_INIT_ON_ALLOC] = policy.init_on_alloc
    p[P_TRACK] = policy.track
    p[P_BALLOON] = policy.balloon
    p[P_REPORTING] = policy.reporting
    p[P_HINT] = HINTS.index(policy.hint)
    p[P_FREE_SIGNAL] = FREE_SIGNALS.index(policy.free_signal)
    p[P_PFMEMALLOC] = PFMEMALLOC.index(policy.pfmemalloc)
    p[P_ALIASING] = policy.aliasing_cache
    p[P_REPORTING_ORDER] = policy.reporting_order
    p[P_REPORTING_DELAY] = policy.reporting_delay_ns
    p[P_OFFLOAD] = policy.offload
    p[P_ZEROED_AWARE] = policy.zeroed_aware
    p[P_OFFLOAD_BATCH] = policy.offload_batch_pages
    p[P_OFFLOAD_WATERMARK] = int(policy.offload_watermark * nr_pages)
    p[P_OFFLOAD_PERIOD] = policy.offload_period_ns
    return p
