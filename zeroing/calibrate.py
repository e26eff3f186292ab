"""``zeroing calibrate``: measure this machine's costs and write a cost profile (TOML).

What is measured, one thread, best of ``reps``:
- clearing, ns per 4 KiB page, for blocks of order 0..10 cleared one 4 KiB call at a time in
  address order (as ``kernel_init_pages`` and ``folio_zero_user`` do), with normal stores
  (each call becomes ``memset``) and with non-temporal stores (``movnt``, from LLVM's
  ``!nontemporal``), over blocks picked at random in a pool much larger than the last-level
  cache, so every block is cold;
- the anonymous page fault: first touch of fresh memory per 4 KiB page, and per 2 MiB with
  ``MADV_HUGEPAGE`` where THP is available; minus the clear inside it, that is the fixed cost
  of the fault path (``fault.order0_ns``, ``fault.huge_ns``);
- ``MADV_DONTNEED`` of a populated 2 MiB range (what the host does per reported block);
- where a GPU is present (CuPy): launch latency, device memset bandwidth, pinned
  host-to-device transfer.
Not measurable here and recorded as such: the VM exit/entry of an EPT violation or a
virtqueue kick (no VM). The host's refault is modelled as that exit plus the same anonymous
fault measured here, which is what KVM's EPT violation path does on the host
(``kvm_mmu_page_fault`` -> ``hva_to_pfn`` -> ``handle_mm_fault``).
"""
import datetime
import mmap
import os
import platform
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .cost import NR_ORDERS, PAGE_SIZE, profile_from_dict
from .run import write_text

#: VM exit + entry round trip, not measurable without a VM: an assumption, recorded as one.
VMEXIT_NS_ASSUMED = 1000.0
#: GPU figures used when no GPU is present (/work/shared/reference/gpu-h200.md, 2026-11-26).
H200_REFERENCE = {
    "bandwidth_gb_s": 55.3, "launch_ns": 8200.0, "transfer_gb_s": 53.7, "row_bytes": 16,
    "batch_pages": 16384, "queue_depth": 4,
    "source": "NVIDIA H200 reference (gpu-h200.md, measured 2026-11-26, CuPy 14.2): launch+sync "
              "8.2 us wall; command rows H2D pinned 53.7 GB/s (16 MiB); the stores go to guest "
              "RAM in host memory, so over the link: D2H pinned 55.3 GB/s (256 MiB), not the "
              "4.5 TB/s of device memset",
}
MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", 14)
MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 4)
MADV_NOHUGEPAGE = getattr(mmap, "MADV_NOHUGEPAGE", 15)


@intrinsic
def _nt_zero(typingctx, addr, nbytes):
    """Zero ``nbytes`` (a multiple of 32) at ``addr`` (32-byte aligned) with non-temporal
    stores, then a fence (NT stores are weakly ordered)."""
    def codegen(context, builder, sig, args):
        a, n = args
        vec = ir.VectorType(ir.IntType(64), 4)
        zero = ir.Constant(vec, None)
        nt = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        count = builder.udiv(n, ir.Constant(n.type, 32))
        with cgutils.for_range(builder, count) as loop:
            off = builder.mul(loop.index, ir.Constant(n.type, 32))
            ptr = builder.inttoptr(builder.add(a, off), vec.as_pointer())
            st = builder.store(zero, ptr, align=32)
            st.set_metadata("nontemporal", nt)
        builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(types.intp, types.intp), codegen


@njit(cache=True)
def _clear_normal(buf, starts, nbytes):
    for s in starts:
        buf[s:s + nbytes] = 0


@njit(cache=True)
def _clear_nt(base, starts, nbytes):
    for s in starts:
        _nt_zero(base + s, nbytes)


@njit(cache=True)
def _touch(buf, step):
    for i in range(0, buf.shape[0], step):
        buf[i] = 1


def _aligned_pool(nbytes, align=1 << 21):
    raw = np.empty(nbytes + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    pool = raw[off:off + nbytes]
    pool[:] = 1  # populate: page faults are not part of what the clears measure
    return pool


def measure_clears(pool_mib, reps, log=print, budget_mib=256):
    """ns per 4 KiB page by extent order, normal and non-temporal stores, cold extents."""
    pool = _aligned_pool(pool_mib << 20)
    rng = np.random.default_rng(0)
    out = {"normal": [], "nt": []}
    for order in range(NR_ORDERS):
        extent = PAGE_SIZE << order
        slots = pool.nbytes // extent
        n = max(1, min(slots, (budget_mib << 20) // extent))
        for method in ("normal", "nt"):
            best = float("inf")
            for _ in range(reps + 1):  # the first run compiles
                pool[:] = 1  # all dirty; the pool is >> LLC, so what is cleared next is cold
                blocks = (rng.choice(slots, size=n, replace=False) * extent).astype(np.int64)
                starts = (blocks[:, None] + np.arange(1 << order) * PAGE_SIZE).ravel()
                t = time.perf_counter()
                if method == "normal":
                    _clear_normal(pool, starts, PAGE_SIZE)
                else:
                    _clear_nt(pool.ctypes.data, starts, PAGE_SIZE)
                best = min(best, time.perf_counter() - t)
            if method == "nt" and pool[starts[0]] != 0:
                raise RuntimeError("non-temporal clear did not clear")
            ns = best * 1e9 / (n << order)
            out[method].append(round(ns, 2))
            log(f"clear order {order:2d} {method:6s}: {ns:8.2f} ns/page "
                f"({PAGE_SIZE / ns:6.2f} GB/s, {n} extents)")
    return out


def thp_state():
    """The THP mode in use (``[...]`` in transparent_hugepage/enabled), or "unknown"."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
        return text[text.index("[") + 1:text.index("]")]
    except (OSError, ValueError):
        return "unknown"


def measure_faults(mib, reps, log=print):
    """Anonymous faults on memory this machine's host already backs (touch, MADV_DONTNEED,
    touch again: the guest reuses the pages it just freed): ns per 4 KiB fault, per 2 MiB THP
    fault (None when THP is off or the kernel gave no huge pages); the first touch is kept
    as ``first_*`` (in a VM it includes the host backing the memory), and MADV_DONTNEED of
    2 MiB."""
    res = {}
    size = mib << 20
    for huge in (False, True):
        step = (2 << 20) if huge else PAGE_SIZE
        m = mmap.mmap(-1, size + (2 << 20), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buf = np.frombuffer(m, dtype=np.uint8)
        off = (-buf.ctypes.data) % (2 << 20)
        m.madvise(MADV_HUGEPAGE if huge else MADV_NOHUGEPAGE, off, size)
        view = buf[off:off + size]
        times = []
        for _ in range(reps + 1):
            t = time.perf_counter()
            _touch(view, step)
            times.append(time.perf_counter() - t)
            if huge and _anon_huge_kb() == 0:
                break
            m.madvise(MADV_DONTNEED, off, size)
        del buf, view
        m.close()
        kind = "huge" if huge else "order0"
        if huge and len(times) < reps + 1:
            log(f"THP fault: not measured (THP {thp_state()}, no huge pages mapped)")
            res[kind] = res["first_" + kind] = None
            continue
        res["first_" + kind] = times[0] * 1e9 / (size // step)
        res[kind] = min(times[1:]) * 1e9 / (size // step)
        log(f"fault {'2 MiB THP' if huge else '4 KiB'}: {res[kind]:10.1f} ns with its clear "
            f"(first touch of fresh memory: {res['first_' + kind]:.1f} ns)")
    size = 64 << 20
    m = mmap.mmap(-1, size + (2 << 20), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf = np.frombuffer(m, dtype=np.uint8)
    base = (-buf.ctypes.data) % (2 << 20)  # whole huge pages: no split
    m.madvise(MADV_HUGEPAGE, base, size)
    best = float("inf")
    for _ in range(reps + 1):
        buf[base:base + size] = 1
        t = time.perf_counter()
        for off in range(base, base + size, 2 << 20):
            m.madvise(MADV_DONTNEED, off, 2 << 20)
        best = min(best, time.perf_counter() - t)
    res["dontneed_2m"] = best * 1e9 / (size >> 21)
    log(f"MADV_DONTNEED of 2 MiB: {res['dontneed_2m']:.1f} ns")
    del buf
    m.close()
    return res


def _anon_huge_kb():
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure_gpu(log=print):
    """CuPy on a real device: launch latency, memset bandwidth, pinned H2D. None without one."""
    try:
        import cupy as cp
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no package, no driver, no device
        log(f"GPU: not measured ({type(e).__name__}); profile uses the H200 reference figures")
        return None
    dev = cp.cuda.Device()
    name = cp.cuda.runtime.getDeviceProperties(dev.id)["name"].decode()
    k = cp.ElementwiseKernel("", "raw int32 x", "", "noop")
    x = cp.zeros(1, cp.int32)

    def best(fn, reps=20):
        fn()
        dev.synchronize()
        b = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            dev.synchronize()
            b = min(b, time.perf_counter() - t)
        return b
    launch = best(lambda: k(x, size=1))
    big = cp.empty(1 << 30, cp.uint8)
    memset = (1 << 30) / best(lambda: big.fill(0), 5) / 1e9
    host = cp.cuda.alloc_pinned_memory(16 << 20)
    src = np.frombuffer(host, np.uint8, 16 << 20)
    dst = cp.empty(16 << 20, cp.uint8)
    h2d = (16 << 20) / best(lambda: dst.set(src), 10) / 1e9
    d2h = (16 << 20) / best(lambda: dst.get(out=src), 10) / 1e9
    log(f"GPU {name}: launch+sync {launch * 1e6:.1f} us, memset {memset:.0f} GB/s, "
        f"H2D pinned {h2d:.1f} GB/s, D2H pinned {d2h:.1f} GB/s")
    return {"bandwidth_gb_s": round(d2h, 2), "launch_ns": round(launch * 1e9, 1),
            "transfer_gb_s": round(h2d, 2), "row_bytes": 16, "batch_pages": 16384,
            "queue_depth": 4,
            "source": f"measured on {name} by zeroing calibrate: launch+sync wall; rows H2D "
                      f"pinned 16 MiB; stores to guest RAM in host memory at the D2H pinned rate "
                      f"(device memset {memset:.0f} GB/s is for device memory)"}


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(v):
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def profile_toml(p, notes):
    """TOML text of a profile dict, each key with its provenance comment."""
    lines = [f"# Cost profile written by `zeroing calibrate` on {p['meta']['date']}.", ""]
    for table, values in p.items():
        if table == "offload":
            continue
        lines.append(f"[{table}]")
        for k, v in values.items():
            note = notes.get(f"{table}.{k}")
            lines.append(f"{k} = {_fmt(v)}" + (f"  # {note}" if note else ""))
        lines.append("")
    for kind, values in p.get("offload", {}).items():
        lines.append(f"[offload.{kind}]")
        lines += [f"{k} = {_fmt(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def calibrate(out, pool_mib=1024, reps=3, gpu=True, log=print):
    """Measure and write the profile to ``out`` (atomically); returns the profile dict."""
    if pool_mib < 64 or reps < 1:
        raise ValueError("--pool-mib must be at least 64 and --reps at least 1")
    clears = measure_clears(pool_mib, reps, log)
    faults = measure_faults(256, reps, log)
    order0 = max(0.0, faults["order0"] - clears["normal"][0])
    huge = faults["huge"]
    huge_fixed = None if huge is None else max(0.0, huge - 512 * clears["normal"][9])
    if huge_fixed is None:
        log("THP: not available here; fault.huge_ns and host.ept_fault_ns take the 4 KiB "
            "fault's figures (not measurements: calibrate on a machine with THP for them)")
    gpu_dev = measure_gpu(log) if gpu else None
    if not gpu:
        log("GPU: skipped (--no-gpu); [offload.gpu] takes the H200 reference figures")
    date = datetime.date.today().isoformat()
    machine = f"{_cpu_name()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    p = {
        "meta": {"name": f"calibrated-{platform.node() or 'host'}", "machine": machine,
                 "date": date,
                 "method": f"zeroing calibrate: one thread, best of {reps}, cold extents picked at "
                           f"random in a {pool_mib} MiB pool; faults of 256 MiB re-touched after MADV_DONTNEED; "
                           f"THP {thp_state()}",
                 "vmexit_assumed_ns": VMEXIT_NS_ASSUMED,
                 "first_touch_order0_ns": round(faults["first_order0"], 1),
                 "first_touch_huge_ns": round(faults["first_huge"] or 0.0, 1),
                 "first_touch_note": "first touch of fresh memory, 4 KiB and 2 MiB (with its "
                                     "clear): on a VM this includes its host backing the memory; "
                                     "recorded, not used"},
        "clear": {"guest_stores": "normal", "host_stores": "normal",
                  "normal": clears["normal"], "nt": clears["nt"]},
        "fault": {"order0_ns": round(order0, 1),
                  "huge_ns": round(huge_fixed if huge_fixed is not None else order0, 1)},
        "host": {"ept_fault_ns": round(VMEXIT_NS_ASSUMED + (huge_fixed if huge_fixed is not None
                                                           else order0), 1),
                 "ept_fault_4k_ns": round(VMEXIT_NS_ASSUMED + order0, 1),
                 "page_order": 9},
        "reporting": {"sgl_ns": round(VMEXIT_NS_ASSUMED + 32 * faults["dontneed_2m"], 1)},
        "offload": {
            "cpu": {"bandwidth_gb_s": round(PAGE_SIZE / clears["normal"][0], 3), "launch_ns": 0.0,
                    "transfer_gb_s": 0.0, "row_bytes": 0, "batch_pages": 16384,
                    "queue_depth": 1,
                    "source": "a kthread on another CPU clearing page by page (clear.normal[0] of "
                              "this profile); its wake-up is not charged"},
            "gpu": gpu_dev or dict(H200_REFERENCE),
        },
    }
    notes = {
        "clear.normal": "ns per 4 KiB page clearing a block of order 0..10 page by page, "
                        "normal stores, measured",
        "clear.nt": "the same with non-temporal stores, measured",
        "fault.order0_ns": "measured 4 KiB fault (re-touch) minus clear.normal[0]",
        "fault.huge_ns": ("measured THP fault (re-touch) minus 512 x clear.normal[9]"
                          if huge_fixed is not None else
                          "THP not available here: the 4 KiB figure, not a measurement"),
        "host.ept_fault_ns": "vmexit (assumed, meta.vmexit_assumed_ns) + the host's fault "
                             "without its clear (fault.huge_ns: host.page_order 9)",
        "host.ept_fault_4k_ns": "vmexit (assumed) + the host's 4 KiB fault without its clear "
                                "(fault.order0_ns): a page of a host page a discard split",
        "host.page_order": "QEMU madvises guest RAM MADV_HUGEPAGE; reporting frees whole 2 MiB",
        "reporting.sgl_ns": "vmexit (assumed) + 32 x measured MADV_DONTNEED of 2 MiB",
    }
    text = profile_toml(p, notes)
    return _write(out, text, p)


def _write(out, text, p):
    from .tomlfile import tomllib
    profile_from_dict(tomllib.loads(text), out)  # what is written must load
    write_text(out, text)
    return p
