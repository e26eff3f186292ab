"""Formula tests: watermarks, batch, high_min and high_max as 6.18 computes them.

Each expected value is derived in a comment from the kernel function it comes from
(mm/page_alloc.c: calculate_min_free_kbytes, __setup_per_zone_wmarks, zone_batchsize,
zone_highsize, zone_set_pageset_high_and_batch; mm/khugepaged.c:
set_recommended_min_free_kbytes), and checked against two real /proc/zoneinfo captures.
"""
import os
import re

import pytest

from allocator import BuddyAllocator
from allocator.pcp import PCP_HIGH_MIN
from allocator.watermarks import node_watermarks, zone_batchsize, zone_highsize, zone_limits

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("pages, cpus, thp, expected", [
    # 2 GiB, THP: min_free_kbytes = isqrt(524288 * 4 * 16) = 5792; khugepaged raises it to
    # 512 * (2 + 3 * 3) = 5632 pages (5% cap: (524288 - 2496) / 20 = 26089) = 22528 KiB.
    # min 5632; low = min + max(5632 >> 2, 524288 * 10 / 10000 = 524) = 7040; high 8448.
    # batch: min(524288 >> 10, 256) / 4 = 64, rounddown_pow_of_two(96) - 1 = 63.
    # high_min = 7040 / 1; high_max = 524288 / 8 / 1 = 65536.
    (1 << 19, 1, True, (5632, 7040, 8448, 63, 7040, 65536)),
    # 2 GiB without THP: min 5792 >> 2 = 1448; step max(362, 524) = 524: low 1972, high 2496
    # (1972: the fixed high the model used before auto-tuning).
    (1 << 19, 1, False, (1448, 1972, 2496, 63, 1972, 65536)),
    # 2 GiB, THP, 4 CPUs: high_min 7040 / 4 = 1760, high_max 65536 / 4 = 16384.
    (1 << 19, 4, True, (5632, 7040, 8448, 63, 1760, 16384)),
    # 64 MiB, THP: min_free_kbytes isqrt(16384 * 64) = 1024 (256 pages; low 320, high 384);
    # the raise is capped at (16384 - 384) / 20 = 800 pages: min 800, step max(200, 16) = 200.
    # batch: (16384 >> 10) / 4 = 4, rounddown_pow_of_two(6) - 1 = 3. high_min max(1000, 12),
    # high_max 16384 / 8 = 2048.
    (1 << 14, 1, True, (800, 1000, 1200, 3, 1000, 2048)),
    # 64 GiB, THP, 8 CPUs: min_free_kbytes isqrt(16777216 * 64) = 32768 (8192 pages) is above
    # the THP recommendation (5632 pages), which never lowers it. step max(2048, 16777) =
    # 16777: low 24969, high 41746. high_min 24969 / 8 = 3121; high_max 16777216 / 64 = 262144.
    (1 << 24, 8, True, (8192, 24969, 41746, 63, 3121, 262144)),
    # 16 MiB: batch (4096 >> 10) / 4 = 1, rounddown_pow_of_two(1) - 1 = 0, max(1, 0) = 1.
    # min_free_kbytes isqrt(16384 * 16) = 512 (128 pages; low 160, high 192); raise capped at
    # (4096 - 192) / 20 = 195 pages: min 195, step max(48, 4) = 48: low 243, high 291.
    # high_min max(243, 1 << 2) = 243; high_max max(4096 / 8, 4) = 512.
    (1 << 12, 1, True, (195, 243, 291, 1, 243, 512)),
])
def test_zone_limits(pages, cpus, thp, expected):
    lim = zone_limits(pages, cpus, thp)
    assert (lim.wmark_min, lim.wmark_low, lim.wmark_high, lim.batch, lim.high_min,
            lim.high_max) == expected
    a = BuddyAllocator(pages, nr_cpus=cpus, thp=thp)
    assert a.watermarks() == expected[:3]
    info = a.pcp_info(cpus - 1)
    assert (info["batch"], info["high_min"], info["high_max"]) == expected[3:]


def test_percpu_pagelist_high_fraction_turns_auto_tuning_off():
    # zone_set_pageset_high_and_batch(): with the sysctl set, high_min = high_max =
    # managed / fraction / cpus = 524288 / 100 / 2 = 2621.
    lim = zone_limits(1 << 19, 2, True, percpu_pagelist_high_fraction=100)
    assert lim.high_min == lim.high_max == 2621


def test_highsize_is_at_least_four_batches():
    # zone_highsize(): high = max(total / cpus, batch << 2).
    assert zone_highsize(1 << 19, 100, 63, 64) == 252
    assert zone_batchsize(1 << 30) == 63  # capped at 1 MiB / 4 KiB / 4 = 64 -> 63


def parse_zoneinfo(path):
    """{zone: {managed, min, low, high, batch, high_min, high_max}} and the CPU count."""
    zones, cur, cpus = {}, None, set()
    with open(path) as f:
        for line in f:
            m = re.match(r"Node \d+, zone\s+(\w+)", line)
            if m:
                cur = zones.setdefault(m.group(1), {})
                continue
            m = re.match(r"\s+(managed|min|low|high|batch|high_min|high_max):?\s+(\d+)$", line)
            if m and cur is not None:
                cur.setdefault(m.group(1), int(m.group(2)))
            m = re.match(r"\s+cpu: (\d+)", line)
            if m:
                cpus.add(int(m.group(1)))
    return zones, len(cpus)


@pytest.mark.parametrize("name", ["before_zoneinfo-6.18", "pcp_nothp128_before_zoneinfo-6.18"])
def test_matches_real_zoneinfo(name):
    """Two 6.18 guests (2 vCPUs, THP madvise: khugepaged's raise applies): every lowmem zone's
    watermarks, batch, high_min and high_max follow from the managed pages alone."""
    zones, cpus = parse_zoneinfo(os.path.join(DATA, name))
    lowmem = [z for z in ("DMA", "DMA32", "Normal") if z in zones]
    marks = node_watermarks([zones[z]["managed"] for z in lowmem], thp=True)
    for zname, (wmin, wlow, whigh) in zip(lowmem, marks):
        z = zones[zname]
        assert (z["min"], z["low"], z["high"]) == (wmin, wlow, whigh), zname
        batch = zone_batchsize(z["managed"])
        assert z["batch"] == batch, zname
        assert z["high_min"] == zone_highsize(z["managed"], wlow, batch, cpus), zname
        assert z["high_max"] == zone_highsize(z["managed"], wlow, batch, cpus, 8), zname
    # Without the THP raise the Normal zone's min would be far lower: the raise is visible.
    plain = node_watermarks([zones[z]["managed"] for z in lowmem], thp=False)
    assert plain[-1][0] < zones["Normal"]["min"]


def test_high_limits_follow_the_batch_in_use():
    """zone_highsize() keeps high at least 4 batches of the batch the pageset uses: a small
    batch leaves the low watermark's share, a large one raises both limits to 4 batches."""
    default = zone_limits(1 << 18, 64)
    assert default.batch == 63 and default.high_min == 63 << 2  # 4 batches > 7040 // 64
    small = zone_limits(1 << 18, 64, batch=2)
    assert small.high_min == 7040 // 64 and small.high_max == default.high_max
    big = zone_limits(1 << 18, 64, batch=4096)
    assert big.high_min == big.high_max == 4096 << 2
    a = BuddyAllocator(1 << 18, nr_cpus=64, pcp_batch=2)
    assert a.zone.pcp_state[0, PCP_HIGH_MIN] == 7040 // 64


def test_a_workload_run_s_node_has_an_x86_64_guest_s_dma_zone():
    """A workload run models a guest's zone beside x86-64's 16 MiB DMA zone (3840 managed
    pages in the 6.18 capture): khugepaged's raise counts two zones, so a 2 GiB guest's marks
    and pcp high_min are about twice a lone zone's. ``other_zones=()`` is a node of one zone."""
    import numpy as np

    from allocator.watermarks import X86_64_DMA_MANAGED
    from zeroing.events import EVENT_DTYPE
    from zeroing.policy import make_policy
    from zeroing.run import GUEST_OTHER_ZONES, simulate

    zones, _ = parse_zoneinfo(os.path.join(DATA, "before_zoneinfo-6.18"))
    assert X86_64_DMA_MANAGED == zones["DMA"]["managed"]
    assert GUEST_OTHER_ZONES == (X86_64_DMA_MANAGED,)
    events, pages = np.zeros(0, dtype=EVENT_DTYPE), 1 << 19
    guest = simulate(events, make_policy("baseline"), pages)
    alone = simulate(events, make_policy("baseline"), pages, other_zones=())
    assert guest["zone"] == {"other_zones": [3840], "watermarks": [11182, 13977, 16772]}
    assert alone["zone"] == {"other_zones": [], "watermarks": [5632, 7040, 8448]}
    assert guest["pcp"]["pagesets"][0]["high_min"] == 13977
    assert alone["pcp"]["pagesets"][0]["high_min"] == 7040
