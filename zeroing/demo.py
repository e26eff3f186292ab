"""A short demo: buddyinfo and zeroed-block counts before and after a small workload."""
from allocator import BuddyAllocator, format_buddyinfo, format_zeroedinfo
from allocator.opgen import random_ops


def demo(nr_pages=1 << 18, events=200_000, seed=0, out=print):
    """Boot a 1 GiB zone, replay a mix where a third of frees are FPI_ZEROED, show the lists."""
    a = BuddyAllocator(nr_pages)
    out(f"# {nr_pages} pages ({nr_pages * 4 // 1024} MiB), pcp high {a.pcp_high} batch {a.pcp_batch}")
    out("# before")
    out(format_buddyinfo(a.buddyinfo()))
    out(format_zeroedinfo(a.zeroed_info()))
    ops = random_ops(events, nr_pages, seed=seed, zeroed_fraction=1 / 3)
    pfn, hint = a.run(ops)
    a.check()
    allocs = ops["op"] == 1
    out(f"# after {events} events (a third of frees with FPI_ZEROED)")
    out(format_buddyinfo(a.buddyinfo()))
    out(format_zeroedinfo(a.zeroed_info()))
    s = a.stats()
    hits = int(hint[allocs].sum())
    out(f"allocations {int(allocs.sum())}, handed out zeroed {hits} "
        f"({hits / max(1, int(allocs.sum())):.1%}); zeroed pages lost to merges "
        f"{s['zeroed_dropped_merge']}; pcp pages {a.nr_pcp_pages()}")
    return a
