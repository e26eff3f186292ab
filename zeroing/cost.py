"""The cost model: what each modelled operation costs on the simulated clock (ns).

Two clocks stay apart (ARCHITECTURE.md, "Time"): the events' clock says *when* things happen;
this model says what the modelled kernel's work *costs* and to whom it is charged:

- the guest task (``task``): clears at the zeroing sites it causes (``free_pages_prepare``
  with init_on_free, ``post_alloc_hook``, ``folio_zero_user`` / ``clear_user_highpage``), the
  fixed cost of the fault path, and the host's work when it touches a discarded page (the
  vCPU waits through the EPT violation, so the guest's task-clock sees it);
- background work (``background``): the free page reporting worker (one virtqueue kick and
  host discard per scatterlist);
- the offload device (``offload_device``): a CPU kthread, a GPU or a DMA engine, each with its
  own profile (bandwidth, launch latency, transfer of the command rows, batch, queue depth);
- the host (``host``): an EPT violation and a host-side clear at the guest's FIRST touch of a
  discarded page (free page reporting, balloon), charged lazily then, never at report time:
  the host does ``MADV_DONTNEED`` on reported ranges and supplies a zeroed page on refault.

Kernel paths whose cost shape is modelled (6.18):
- ``kernel_init_pages()`` (init_on_free, init_on_alloc, __GFP_ZERO) clears a block page by
  page with ``clear_highpage()``; ``folio_zero_user()`` clears a huge folio 4 KiB subpage by
  subpage (``process_huge_page()``). Both walk a physically contiguous block, so the profile's
  rate is "ns per page, clearing a block of order k one 4 KiB call at a time": what decides
  the rate is whether the next page is adjacent (the prefetchers stream), not the call size
  (``zeroing calibrate`` measured 253 ns/page for 4 KiB calls over 2 MiB runs against 260 for
  one 2 MiB memset, and 990 for scattered 4 KiB pages, on the 2-CPU EPYC VM).
- host: a discarded range is refaulted in units of ``host.page_order`` (9 when the host backs
  guest memory with THP, as QEMU madvises it): one EPT violation and one host clear per unit.

A profile is a TOML file (``profiles/default.toml`` documents every key) with provenance:
machine, method and date; values are measured (``zeroing calibrate``) or cited, never fitted.
This module holds the profile and pure functions over its array form; the engine calls them at
each site and never computes a cost inline.
"""
import dataclasses
import math
import os

import numpy as np
from numba import njit

from .tomlfile import key_line, read_toml

NR_ORDERS = 11  # extent orders 0..MAX_PAGE_ORDER
PAGE_SIZE = 4096
DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles",
                               "default.toml")
OFFLOAD_DEVICES = ("cpu", "gpu", "dma")
STORES = ("normal", "nt")

# Indices of the profile's array form (float64, read by compiled code).
K_CLEAR_GUEST = 0  # ns per 4 KiB page clearing an extent of order k: K_CLEAR_GUEST + k
K_CLEAR_HOST = K_CLEAR_GUEST + NR_ORDERS  # the host's stores, same layout
K_FAULT_ORDER0 = K_CLEAR_HOST + NR_ORDERS
K_FAULT_HUGE = K_FAULT_ORDER0 + 1
K_EPT_FAULT = K_FAULT_HUGE + 1
K_HOST_ORDER = K_EPT_FAULT + 1
K_REPORT_SGL = K_HOST_ORDER + 1
K_OFF_BYTES_PER_NS = K_REPORT_SGL + 1  # offload device bandwidth (GB/s = bytes/ns)
K_OFF_LAUNCH = K_OFF_BYTES_PER_NS + 1
K_OFF_XFER_BYTES_PER_NS = K_OFF_LAUNCH + 1  # command rows to the device; 0: no transfer
K_OFF_ROW_BYTES = K_OFF_XFER_BYTES_PER_NS + 1
K_OFF_DEPTH = K_OFF_ROW_BYTES + 1  # batches in flight at most
K_EPT_FAULT_4K = K_OFF_DEPTH + 1  # the host's refault of one 4 KiB page of a split host page
NR_COST = K_EPT_FAULT_4K + 1

# Accounts (float64 ns, and a few counts), one array the engine adds to.
A_FREE, A_ALLOC, A_USER, A_FAULT, A_HOST, A_HOST_IN_TASK, A_BACKGROUND, A_OFFLOAD_DEVICE, \
    A_OFFLOAD_BYTES, A_OFFLOAD_BEHIND, A_EPT_FAULTS, A_OFFLOAD_BATCHES = range(12)
NR_ACCOUNTS = 12


class ProfileError(ValueError):
    """A cost profile that cannot be used; the message names the file, key and reason."""


@dataclasses.dataclass
class OffloadDevice:
    """An offload engine's own profile."""

    kind: str  # cpu (a kthread), gpu, dma
    bandwidth_gb_s: float  # clearing rate of guest memory (GB/s = bytes per ns)
    launch_ns: float  # fixed cost per batch: wake-up, kernel launch, descriptor setup
    transfer_gb_s: float  # rate of moving the batch's command rows to the device; 0: none
    row_bytes: int  # bytes per command row (pfn, order)
    batch_pages: int  # pages per batch
    queue_depth: int  # batches in flight at most
    source: str = ""


@dataclasses.dataclass
class CostProfile:
    """A cost profile: clear rates by order and store method, fault and host costs, offload
    devices. ``meta`` records machine, method, date and sources."""

    meta: dict
    clear: dict  # method -> 11 ns-per-page values by extent order
    guest_stores: str
    host_stores: str
    fault_order0_ns: float
    fault_huge_ns: float
    ept_fault_ns: float
    ept_fault_4k_ns: float
    host_page_order: int
    report_sgl_ns: float
    offload: dict  # kind -> OffloadDevice
    path: str = "<profile>"

    def device(self, kind):
        if kind not in self.offload:
            raise ProfileError(f"{self.path}: offload.{kind}: no such offload device in the "
                               f"profile (it has: {', '.join(self.offload) or 'none'})")
        return self.offload[kind]

    def as_array(self, offload_kind="cpu"):
        k = np.zeros(NR_COST, dtype=np.float64)
        k[K_CLEAR_GUEST:K_CLEAR_GUEST + NR_ORDERS] = self.clear[self.guest_stores]
        k[K_CLEAR_HOST:K_CLEAR_HOST + NR_ORDERS] = self.clear[self.host_stores]
        k[K_FAULT_ORDER0] = self.fault_order0_ns
        k[K_FAULT_HUGE] = self.fault_huge_ns
        k[K_EPT_FAULT] = self.ept_fault_ns
        k[K_EPT_FAULT_4K] = self.ept_fault_4k_ns
        k[K_HOST_ORDER] = self.host_page_order
        k[K_REPORT_SGL] = self.report_sgl_ns
        if self.offload:
            d = self.device(offload_kind)
            k[K_OFF_BYTES_PER_NS] = d.bandwidth_gb_s
            k[K_OFF_LAUNCH] = d.launch_ns
            k[K_OFF_XFER_BYTES_PER_NS] = d.transfer_gb_s
            k[K_OFF_ROW_BYTES] = d.row_bytes
            k[K_OFF_DEPTH] = d.queue_depth
        return k

    def describe(self):
        m = self.meta
        return f"{m.get('name', '?')} ({m.get('machine', '?')}, {m.get('date', '?')})"


#: Bounds of a profile's figures: no step of the model takes 1000 s, no device moves more than
#: a PB/s (nor less than a MB/s), no offload batch isolates more than 4 GiB (its queue is sized by it).
MAX_NS = 1e12
MIN_GB_S, MAX_GB_S = 1e-3, 1e6
MAX_OFFLOAD_BATCH = 1 << 20


def load_profile(path=None):
    """Read and validate a cost profile; every problem is one ProfileError naming the file,
    the key and the reason."""
    if path is None:
        path = DEFAULT_PROFILE
    elif not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ProfileError(f"cost profile {path!r}: a path to a TOML file (None: the shipped "
                           "one)")
    raw, text = read_toml(path, ProfileError, "cost profile", with_text=True)
    return profile_from_dict(raw, path, text)


def profile_from_dict(raw, path="<profile>", text=None):
    """A CostProfile from parsed TOML; with the file's ``text`` a message names the key's
    line (``FILE:LINE: key: reason``)."""
    def bad(key, reason):
        line = key_line(text, key) if text is not None else None
        raise ProfileError(f"{path}:{line}: {key}: {reason}" if line else
                           f"{path}: {key}: {reason}")

    def table(name):
        t = raw.get(name)
        if not isinstance(t, dict):
            bad(name, "missing table")
        return t

    def num(t, prefix, key, lo=0.0, integer=False, hi=MAX_NS):
        if key not in t:
            bad(f"{prefix}.{key}", "missing")
        v = t[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            bad(f"{prefix}.{key}", f"expected a {'whole ' if integer else ''}number, got {v!r}")
        if not finite(v) or not lo <= v <= hi:
            bad(f"{prefix}.{key}", f"must be a number from {lo:g} to {hi:g}, got {v!r}")
        return v

    def keys(t, prefix, allowed):
        for key in t:
            if key not in allowed:
                bad(f"{prefix}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})")

    def finite(v):  # a TOML integer may exceed what a float (or numpy) holds: still finite
        return isinstance(v, int) or math.isfinite(v)

    known = {"meta", "clear", "fault", "host", "reporting", "offload"}
    for key in raw:
        if key not in known:
            bad(key, f"unknown table (known: {', '.join(sorted(known))})")
    meta = table("meta")
    for key in ("name", "machine", "date", "method"):
        if key not in meta or meta[key] == "":
            bad(f"meta.{key}", "missing (a profile records machine, method and date)")
        if not isinstance(meta[key], str):
            bad(f"meta.{key}", f"expected a text, got {meta[key]!r}")
        if not meta[key].strip() or not meta[key].isprintable():
            bad(f"meta.{key}", f"{meta[key]!r}: a text of printable characters on one line "
                               "(it is printed with every result)")
    if "vmexit_assumed_ns" in meta:  # provenance of host.ept_fault_ns (calibrate.py)
        num(meta, "meta", "vmexit_assumed_ns")
    clear = table("clear")
    rates = {}
    for method in STORES:
        if method in clear:
            v = clear[method]
            if not isinstance(v, list) or len(v) != NR_ORDERS:
                bad(f"clear.{method}", f"expected {NR_ORDERS} ns-per-page values (orders 0..10)")
            for i, x in enumerate(v):
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not finite(x) \
                        or not 0 < x <= MAX_NS:
                    bad(f"clear.{method}[{i}]", f"expected a positive number of ns up to "
                                                f"{MAX_NS:g}, got {x!r}")
            rates[method] = np.array(v, dtype=np.float64)
    stores = {}
    for key in ("guest_stores", "host_stores"):
        stores[key] = clear.get(key, "normal")
        if not isinstance(stores[key], str) or stores[key] not in rates:
            bad(f"clear.{key}", f"{stores[key]!r} has no rates in [clear] "
                                f"(has: {', '.join(rates) or 'none'})")
    keys(clear, "clear", set(STORES) | {"guest_stores", "host_stores"})
    fault, host, rep = table("fault"), table("host"), table("reporting")
    keys(fault, "fault", {"order0_ns", "huge_ns"})
    keys(host, "host", {"ept_fault_ns", "ept_fault_4k_ns", "page_order"})
    keys(rep, "reporting", {"sgl_ns"})
    host_order = num(host, "host", "page_order", integer=True, hi=NR_ORDERS - 1)
    if host_order == 0 and num(host, "host", "ept_fault_4k_ns") != num(host, "host",
                                                                          "ept_fault_ns"):
        bad("host.ept_fault_4k_ns", f"{host['ept_fault_4k_ns']!r} differs from ept_fault_ns "
                                    f"{host['ept_fault_ns']!r}: with page_order 0 every "
                                    "refault is of a 4 KiB page (give both the same)")
    devices = {}
    off = raw.get("offload", {})
    if not isinstance(off, dict):
        bad("offload", "expected tables [offload.cpu], [offload.gpu], ...")
    for kind, d in off.items():
        where = f"offload.{kind}"
        if kind not in OFFLOAD_DEVICES:
            bad(where, f"unknown device kind (known: {', '.join(OFFLOAD_DEVICES)})")
        if not isinstance(d, dict):
            bad(where, "expected a table")
        keys(d, where, {"bandwidth_gb_s", "launch_ns", "transfer_gb_s", "row_bytes",
                        "batch_pages", "queue_depth", "source"})
        bw = num(d, where, "bandwidth_gb_s", MIN_GB_S, hi=MAX_GB_S)
        xfer = num(d, where, "transfer_gb_s", hi=MAX_GB_S)
        if 0 < xfer < MIN_GB_S:
            bad(f"{where}.transfer_gb_s", f"must be 0 (rows cost nothing) or from {MIN_GB_S:g}, "
                                          f"got {xfer!r}")
        if not isinstance(d.get("source", ""), str) or not d.get("source", "").isprintable():
            bad(f"{where}.source", f"expected a text of printable characters, got "
                                   f"{d['source']!r}")
        batch = num(d, where, "batch_pages", 1, integer=True, hi=MAX_OFFLOAD_BATCH)
        depth = num(d, where, "queue_depth", 1, integer=True, hi=64)
        devices[kind] = OffloadDevice(kind, float(bw), float(num(d, where, "launch_ns")),
                                      float(xfer),
                                      int(num(d, where, "row_bytes", integer=True, hi=4096)),
                                      batch, depth, d.get("source", ""))
    return CostProfile(meta=dict(meta), clear=rates, guest_stores=stores["guest_stores"],
                       host_stores=stores["host_stores"],
                       fault_order0_ns=float(num(fault, "fault", "order0_ns")),
                       fault_huge_ns=float(num(fault, "fault", "huge_ns")),
                       ept_fault_ns=float(num(host, "host", "ept_fault_ns")),
                       ept_fault_4k_ns=float(num(host, "host", "ept_fault_4k_ns")),
                       host_page_order=host_order,
                       report_sgl_ns=float(num(rep, "reporting", "sgl_ns")),
                       offload=devices, path=path)


# ---------------------------------------------------------------------------------------------
# Pure functions over the array form (compiled; the engine calls them at each site).

@njit(cache=True)
def site_clear_ns(k, order):
    """ns a guest clear of a block of ``order`` costs at any site (every site walks the block
    page by page; the rate depends on the block's order, see the module docstring)."""
    return (np.int64(1) << order) * k[K_CLEAR_GUEST + order]


@njit(cache=True)
def host_refault_ns(k, order):
    """The host's cost of one discarded unit of ``order`` touched again: an EPT violation and
    a host clear of the unit (``order`` is the discard unit, at most ``host.page_order``)."""
    return k[K_EPT_FAULT] + (np.int64(1) << order) * k[K_CLEAR_HOST + order]


@njit(cache=True)
def host_refault_4k_ns(k):
    """The host's cost of one 4 KiB page of a host page that a smaller discard split: its
    4 KiB fault and the clear of that page."""
    return k[K_EPT_FAULT_4K] + k[K_CLEAR_HOST]


@njit(cache=True)
def fault_fixed_ns(k, order):
    """The fault path without its clear (page-table walk, allocation, mapping, return)."""
    return k[K_FAULT_ORDER0] if order == 0 else k[K_FAULT_HUGE]


@njit(cache=True)
def offload_batch_ns(k, pages, blocks):
    """Device time of one batch: launch, command rows to the device, then the stores."""
    t = k[K_OFF_LAUNCH] + pages * PAGE_SIZE / k[K_OFF_BYTES_PER_NS]
    if k[K_OFF_XFER_BYTES_PER_NS] > 0:
        t += blocks * k[K_OFF_ROW_BYTES] / k[K_OFF_XFER_BYTES_PER_NS]
    return t


def cost_section(acct, counters):
    """The ``cost`` section of a run's result (ns as integers)."""
    ns = lambda i: int(round(float(acct[i])))  # noqa: E731
    guest = ns(A_FREE) + ns(A_ALLOC) + ns(A_USER)
    task = guest + ns(A_FAULT) + ns(A_HOST_IN_TASK)
    return {
        "guest_clear_ns": guest,
        "by_site": {"free": ns(A_FREE), "alloc": ns(A_ALLOC), "user": ns(A_USER)},
        "fault_ns": ns(A_FAULT),
        "host_ns": ns(A_HOST),
        "host_in_task_ns": ns(A_HOST_IN_TASK),
        "ept_faults": ns(A_EPT_FAULTS),
        "background_ns": ns(A_BACKGROUND),
        "offload_device_ns": ns(A_OFFLOAD_DEVICE),
        "offload_bytes": ns(A_OFFLOAD_BYTES),
        "offload_batches": ns(A_OFFLOAD_BATCHES),
        "offload_behind_faults": ns(A_OFFLOAD_BEHIND),
        "task_clock_ns": task,
        # Everything anyone spent: guest task, background, offload device, host (the part of
        # the host's work the task waited through is in host_ns once, not twice).
        "all_work_ns": guest + ns(A_FAULT) + ns(A_HOST) + ns(A_BACKGROUND) + ns(A_OFFLOAD_DEVICE),
    }


def format_cost(cost):
    """Summary lines of a cost section (ms)."""
    ms = lambda v: f"{v / 1e6:.3f} ms"  # noqa: E731
    s = cost["by_site"]
    return "\n".join([
        f"time: task-clock {ms(cost['task_clock_ns'])} = guest clears {ms(cost['guest_clear_ns'])} "
        f"(free {ms(s['free'])}, alloc {ms(s['alloc'])}, user {ms(s['user'])}) + fault path "
        f"{ms(cost['fault_ns'])} + host in task {ms(cost['host_in_task_ns'])}",
        f"time elsewhere: host {ms(cost['host_ns'])} ({cost['ept_faults']} EPT faults), "
        f"background {ms(cost['background_ns'])}, offload device {ms(cost['offload_device_ns'])} "
        f"({cost['offload_batches']} batches, {cost['offload_bytes'] / 2**20:.1f} MiB, "
        f"{cost['offload_behind_faults']} faults found it behind); all work {ms(cost['all_work_ns'])}",
        f"cost profile: {cost['profile']}",
    ])


def vmstat_cost_lines(cost):
    """vmstat-style lines of the cost section (simulator-only: ``zsim_cost_`` prefix)."""
    flat = {k: v for k, v in cost.items() if isinstance(v, int)}
    flat.update({f"by_site_{k}_ns": v for k, v in cost["by_site"].items()})
    return "\n".join(f"zsim_cost_{k} {v}" for k, v in sorted(flat.items()))
