"""Hint designs at the level of struct page, one scenario per design and caller type.

Each scenario: the balloon hands a page back zeroed (FPI_ZEROED, onto the pcp list head); a
caller of the type under test allocates it (pcp is LIFO: it gets that page, with the hint),
writes it and frees it; then a __GFP_ZERO allocation by a caller of another type (so that the
tested type's counters are its own) takes the same page back, and the sanitizer checks it. The
expected outcome is derived below from the design's rules, not measured.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.flags import GFP_KERNEL, __GFP_MOVABLE, __GFP_ZERO
from zeroing import struct_page as SP
from zeroing.events import EV_ALLOC, EV_DEFLATE, EV_FREE, EV_INFLATE, EVENT_CALLER_DTYPE
from zeroing.hint_designs import DESIGNS
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
from zeroing.workloads.unaware import CALLER_GFP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = 4096
CALLERS = SP.MIX_CALLERS

# The rules, from the kernel and the patches (struct_page.py cites them):
#: lru.next is left as prep_new_page wrote it until the free: page tables (x86-64 PTE tables
#: leave _pt_pad_1 alone) and raw users. LRU folios and private lists list_del (LIST_POISON1),
#: slab overlays slab_cache (a pointer), page_pool stores 0 into pp_magic at release.
LRU_WORD_UNTOUCHED = {"pgtable", "raw"}
#: The folio-only flag is cleared on the folio allocation path only (anon, file).
FLAG_NOT_CLEARED = {"slab", "pgtable", "page_pool", "private_list", "raw"}
#: Page tables are freed empty (zap_pte_range cleared every entry): a stale bit is true there.
FREED_ZERO = {"pgtable"}


def expected(options, caller):
    """What the rules say for one page: delivered, lost, stale trusted, false claim, leak."""
    hint, signal = options["hint"], options["free_signal"]
    assign = hint == "lru_bit" and options.get("pfmemalloc") == "assign"
    if signal == "fpi" or hint == "pghint" or assign:
        stale = False  # struct page not read at free / nothing left in it / NULL assigned
    elif hint == "lru_bit":
        stale = caller in LRU_WORD_UNTOUCHED
    else:
        stale = caller in FLAG_NOT_CLEARED
    false = stale and caller not in FREED_ZERO
    # Sites that use the hint: post_alloc_hook (__GFP_ZERO: page tables), and the fault site
    # (anon, aliasing cache), which lru_bit with the pfmemalloc assignment never reaches.
    delivered = caller == "pgtable" or (caller == "anon" and not assign)
    lost = caller == "anon" and assign
    return {"hint_set": 1, "hint_delivered": int(delivered), "hint_lost": int(lost),
            "stale_trusted": int(stale), "false_zeroed": int(false), "leaked": int(false)}


def scenario(caller):
    ev = np.zeros(5, dtype=EVENT_CALLER_DTYPE)
    op, gfp, p_zero = CALLER_GFP[caller]
    ev[0] = (0, EV_INFLATE, 0, 0, 0, 0, 0)
    ev[1] = (1, EV_DEFLATE, 0, 0, 0, 0, 0)  # back zeroed, at the pcp list head
    ev[2] = (2, op, 0, 0, gfp | __GFP_MOVABLE | (__GFP_ZERO if p_zero == 1.0 else 0), 0,
             SP.CALLER_NAMES.index(caller))
    ev[3] = (3, EV_FREE, 0, 0, 0, 2, 0)
    taker = SP.CALLER_PGTABLE if caller != "pgtable" else SP.CALLER_RAW  # not the caller
    ev[4] = (4, EV_ALLOC, 0, 0, GFP_KERNEL | __GFP_MOVABLE | __GFP_ZERO, 0, taker)
    return ev


def run_scenario(options, caller, mode="metadata"):
    policy = make_policy("balloon", aliasing_cache=True, **options)
    return simulate(scenario(caller), policy, PAGES, mode=mode, backend="numpy")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("label,options", DESIGNS, ids=[d[0] for d in DESIGNS])
def test_design_and_caller_type(label, options, caller):
    r = run_scenario(options, caller)
    got = {k: v for k, v in r["by_caller"][caller].items() if k != "allocated"}
    assert got == expected(options, caller), label
    assert r["counters"]["zero_leak"] == got["leaked"]
    if got["leaked"]:  # the leak is the caller's own data, handed to the __GFP_ZERO caller
        assert r["leaks"][0]["handed_out_by"] == 4 and r["leaks"][0]["data_of"] == 2


def test_hildenbrand_false_positive():
    """"some random user doing alloc+use+free would be unaware that there is a bit to clear":
    with the folio-only flag and a free path that trusts it, a raw user's page comes back as
    zeroed, and the next __GFP_ZERO caller gets its data, in real bytes too."""
    options = {"hint": "folio_flag", "free_signal": "page_bit"}
    meta = run_scenario(options, "raw")
    content = run_scenario(options, "raw", mode="content")
    assert meta["by_caller"]["raw"]["false_zeroed"] == 1
    assert content["counters"]["zero_leak"] == meta["counters"]["zero_leak"] == 1
    assert content["leaks"] == meta["leaks"]
    assert content["by_caller"]["raw"]["leaked"] == 1
    # FPI_ZEROED passed explicitly by the freer: the same user cannot forge a claim.
    safe = run_scenario({"hint": "folio_flag", "free_signal": "fpi"}, "raw")
    assert safe["counters"]["zero_leak"] == 0 and safe["by_caller"]["raw"]["stale_trusted"] == 0


def test_lru_bit_or_and_folio_flag_now_differ():
    """The issue's complaint: both used to leak exactly the same pages in unaware-user."""
    ev = make_workload("unaware-user", PAGES, 6000, seed=3)
    lru = simulate(ev, make_policy("balloon", hint="lru_bit", free_signal="page_bit"), PAGES)
    folio = simulate(ev, make_policy("balloon", hint="folio_flag", free_signal="page_bit"), PAGES)
    leaked = {name: {c: v["leaked"] for c, v in r["by_caller"].items() if v["leaked"]}
              for name, r in (("lru", lru), ("folio", folio))}
    assert set(leaked["lru"]) == {"raw"}
    assert set(leaked["folio"]) == {"slab", "page_pool", "private_list", "raw"}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_content_mode_confirms_per_caller_leaks(backend):
    ev = make_workload("unaware-user", PAGES, 6000, seed=5)
    for _, options in DESIGNS:
        policy = make_policy("balloon", aliasing_cache=True, **options)
        meta = simulate(ev, policy, PAGES)
        content = simulate(ev, policy, PAGES, mode="content", backend=backend)
        assert meta["by_caller"] == content["by_caller"]
        assert meta["leaks"] == content["leaks"]


mixes = st.dictionaries(st.sampled_from(CALLERS), st.integers(0, 5), min_size=1).filter(
    lambda m: sum(m.values()) > 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mix=mixes, seed=st.integers(0, 1000), design=st.sampled_from(DESIGNS))
def test_invariants_for_any_caller_mix(mix, seed, design):
    ev = make_workload("unaware-user", PAGES, 1500, seed=seed, callers=mix)
    options = design[1]
    r = simulate(ev, make_policy("balloon", aliasing_cache=True, **options), PAGES)
    total_leak = 0
    for caller, row in r["by_caller"].items():
        assert row["false_zeroed"] <= row["stale_trusted"]
        assert row["hint_delivered"] + row["hint_lost"] <= row["hint_set"] <= row["allocated"]
        assert caller == "balloon" or mix.get(caller, 0) > 0  # only the mix allocates
        total_leak += row["leaked"]
    assert total_leak == r["counters"]["zero_leak"]
    if options["free_signal"] == "fpi" or options["hint"] == "pghint":
        assert r["counters"]["zero_leak"] == 0  # no stale bit can be trusted


@given(st.text(max_size=40))
def test_caller_mix_parser_rejects_garbage_with_valueerror(text):
    try:
        mix = SP.parse_caller_mix(text)
    except ValueError as e:
        assert str(e)
    else:
        assert set(mix) <= set(CALLERS) and sum(mix.values()) > 0


def test_cli_bad_caller_mix_is_one_line():
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "unaware-user",
                        "--callers", "slab=1,bogus=2"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "unknown caller type 'bogus'" in p.stderr


def test_cli_run_prints_per_caller_rows():
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "unaware-user",
                        "--policy", "balloon", "--hint", "folio_flag", "--free-signal", "page_bit",
                        "--pages", "4096", "--events", "3000"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "by caller type" in p.stdout
    for caller in CALLERS:
        assert f"\n{caller} " in p.stdout


def test_experiment_table_plot_and_confirmation(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "hint_designs.py"),
                        "--quick", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "content mode confirms every leak metadata mode counts: True" in p.stdout
    for name in ("table.txt", "results.json", "by_caller.png", "r.json"):
        assert (tmp_path / name).exists()


JIT_SCRIPT = """
import json
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
ev = make_workload("unaware-user", 4096, 2000, seed=7)
out = [simulate(ev, make_policy("balloon", hint=h, free_signal="page_bit"), 4096)["by_caller"]
       for h in ("lru_bit", "folio_flag")]
print(json.dumps(out))
"""


def test_struct_page_words_jit_and_interpreted_agree():
    out = []
    for disable in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=disable, PYTHONPATH=ROOT)
        p = subprocess.run([sys.executable, "-c", JIT_SCRIPT], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        out.append(p.stdout.strip().splitlines()[-1])
    assert out[0] == out[1]


@pytest.mark.parametrize("value,message", [
    ({"anon": True}, "weight True is not a number"),  # a config's TOML true
    ("anon=1,", "an empty entry"),
    (",anon=1", "an empty entry"),
])
def test_caller_mix_slips_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        SP.parse_caller_mix(value)
