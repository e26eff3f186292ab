"""Hostile arguments to the Python API (a helper's pass, session 17): each is refused with an
exception that says what is wrong, never a crash, a hang or a silent wrong count."""
import subprocess
import sys

import numpy as np
import pytest

from allocator import BuddyAllocator
from zeroing.events import (EV_ADOPT, EV_ALLOC, EV_FAULT, EV_FREE, EV_IDLE, EVENT_CALLER_DTYPE,
                            EVENT_DTYPE, MAX_TIME, parse_events)
from zeroing.policy import make_policy
from zeroing.run import BadEventError, Simulation, simulate

GFP = 0x100cca  # GFP_HIGHUSER_MOVABLE


def events(*rows, dtype=EVENT_DTYPE):
    """Rows of (time, op, order, ref)."""
    ev = np.zeros(len(rows), dtype)
    for k, (time, op, order, ref) in enumerate(rows):
        ev[k]["time"], ev[k]["op"], ev[k]["order"], ev[k]["ref"] = time, op, order, ref
        ev[k]["gfp"] = GFP
    return ev


def test_a_block_address_near_2_63_is_out_of_range_not_a_wild_write():
    """``pfn + (1 << order) > nr_pages`` wrapped around for a pfn near 2^63 and passed: the
    zone's arrays were written far outside them (a segmentation fault). In a subprocess, so
    that a crash fails this test rather than ending the suite."""
    code = """
from allocator import BuddyAllocator, BadPageError
a = BuddyAllocator(nr_pages=4096)
for call in (lambda: a.alloc_pfn(2**63 - 1, 0), lambda: a.free(2**63 - 2, 1)):
    try:
        call()
    except BadPageError as e:
        print("refused:", "out of range" in str(e))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split("\n")[:2] == ["refused: True"] * 2


@pytest.mark.parametrize("op,order,ref", [
    (EV_ALLOC, 0, 4106), (EV_FAULT, 0, 8192), (EV_ADOPT, 0, 4196), (EV_ALLOC, 1, 2**63 - 1),
    (EV_FAULT, 9, 2**63 - 511)])
def test_an_exact_block_outside_the_zone_is_a_bad_event(op, order, ref):
    """-E_RANGE is -1, the allocator's NONE: such an allocation was counted as nothing."""
    with pytest.raises(BadEventError, match="event 0: "):
        simulate(events((0, op, order, ref)), make_policy("baseline"), 4096)


def test_feed_refuses_what_it_cannot_run():
    sim = Simulation(make_policy("baseline"), 4096)
    two = events((0, EV_ALLOC, 0, 0), (1, EV_ALLOC, 0, 0))
    for start in (5, -1):  # ran -3 events, or row -1 too
        with pytest.raises(ValueError, match=f"start {start}: outside the 2 rows"):
            sim.feed(two, start=start)
    with pytest.raises(ValueError, match="ev_pfn: a writable int64 array of the 2 rows"):
        sim.feed(two, ev_pfn=np.zeros(1, np.int64))  # written past its end
    with pytest.raises(TypeError, match="1-D numpy array of EVENT_DTYPE"):
        sim.feed(np.zeros((2, 2), EVENT_DTYPE))
    with pytest.raises(TypeError, match="1-D numpy array of EVENT_DTYPE"):
        sim.feed([(0, 1, 0, 0, 0, 0)])
    callers = events((0, EV_ALLOC, 0, 0), dtype=EVENT_CALLER_DTYPE.descr[:-1] + [
        ("caller", np.int64)])
    callers["caller"] = 999  # was cast to uint8: 231
    with pytest.raises(ValueError, match="event 0: caller 999 is no caller type"):
        sim.feed(callers)
    assert sim.finish()["counters"]["pgalloc"] == 0  # nothing ran


@pytest.mark.parametrize("chunk", [0, -1, 1.5, True])
def test_a_chunk_that_is_no_positive_int_is_refused(chunk):
    """``chunk=0`` looped for ever on an empty range."""
    with pytest.raises(ValueError, match=f"chunk {chunk!r}"):
        Simulation(make_policy("baseline"), 4096, chunk=chunk)


@pytest.mark.parametrize("times,message", [
    ((0, 1, MAX_TIME + 1), "event 2: time 4611686018427387905 past"),
    ((0, 1, 2**63 - 1), "past 4611686018427387904 ns"),  # the engine's periods overflowed: a hang
    ((5, 1, 7), "event 1: time 1 before the event before's 5"),
    ((-5, 1, 7), "event 0: time -5 is negative"),
])
def test_event_times_the_engine_cannot_take_are_refused(times, message):
    ev = events((times[0], EV_ALLOC, 0, 0), (times[1], EV_FREE, 0, 0), (times[2], EV_IDLE, 0, 0))
    with pytest.raises(ValueError, match=message):
        simulate(ev, make_policy("baseline"), 4096)


def test_the_text_form_bounds_times_as_the_engine_does():
    with pytest.raises(ValueError, match=r"t:1: time 9223372036854775807 out of range \(0 to "
                       "4611686018427387904"):
        parse_events(f"{2**63 - 1} idle 0 0 0 0\n", "t")
    assert len(parse_events(f"{MAX_TIME} idle 0 0 0 0\n", "t")) == 1
    assert BuddyAllocator(4096).alloc_pfn(4095, 0)  # the last block of the zone is in range


@pytest.mark.parametrize("path", ["/proc/zeroing-out", "/sys/kernel/zeroing-out"])
def test_an_output_folder_that_cannot_be_made_is_refused_up_front(path):
    """As root, /proc and /sys pass the writable test: hint_designs.py ran all its runs, then
    ended in a traceback from os.makedirs."""
    from zeroing.validate import UserError, check_output_folder
    with pytest.raises(UserError, match=f"--out: {path}: "):
        check_output_folder("--out", path)


@pytest.mark.parametrize("profile", ["", 0, {}])
def test_a_cost_profile_that_names_no_file_is_refused(profile):
    """Each of these was taken for "the shipped profile"."""
    from zeroing.cost import ProfileError
    with pytest.raises(ProfileError, match=f"cost profile {profile!r}: a path to a TOML file"):
        simulate(events((0, EV_ALLOC, 0, 0)), make_policy("baseline"), 4096,
                 cost_profile=profile)


@pytest.mark.parametrize("spec", ["", " , "])
def test_a_policy_that_names_no_preset_is_refused(spec):
    """The CLI refused it; the API made the baseline policy."""
    with pytest.raises(ValueError, match="names no preset"):
        make_policy(spec)


@pytest.mark.parametrize("pcp", ["no", 2, None])
def test_pcp_is_true_or_false(pcp):
    with pytest.raises(TypeError, match=f"pcp {pcp!r}: True"):
        BuddyAllocator(4096, pcp=pcp)


def test_event_fields_of_other_types_are_refused():
    """A third pass (session 17): a caller of -1 (int8) became 255 and was counted outside
    the caller table; a float time of NaN passed every time test; big-endian, object and
    sub-array fields failed inside numba; a read-only ev_pfn too."""
    two = events((0, EV_ALLOC, 0, 0), (1, EV_ALLOC, 0, 0))
    sim = Simulation(make_policy("baseline"), 4096)
    signed = events((0, EV_ALLOC, 0, 0), dtype=EVENT_DTYPE.descr + [("caller", np.int8)])
    signed["caller"] = -1
    with pytest.raises(ValueError, match="event 0: caller -1 is no caller type"):
        sim.feed(signed)
    for name, kind in (("caller", np.float64), ("time", np.float64), ("time", object),
                       ("ref", ">i8"), ("ref", ("<i8", (2,)))):
        fields = [(n, kind if n == name else EVENT_CALLER_DTYPE[n]) for n in
                  EVENT_CALLER_DTYPE.names]
        with pytest.raises(TypeError, match=f"events: field {name} is .*, not an integer"):
            sim.feed(np.zeros(2, fields))
    frozen = np.zeros(2, np.int64)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="ev_pfn: a writable int64 array"):
        sim.feed(two, ev_pfn=frozen)
    assert sim.finish()["counters"]["pgalloc"] == 0


def test_an_output_folder_check_leaves_nothing_behind(tmp_path, monkeypatch):
    """A name too long for the file system: the folders made before it were left behind.
    A link followed by "..": the folder tested was not the one the system would make."""
    from zeroing.validate import UserError, check_output_folder
    monkeypatch.chdir(tmp_path)
    for path in ("newA/" + "x" * 300, "newB/sub/" + "y" * 300):
        with pytest.raises(UserError, match="cannot be made"):
            check_output_folder("--out", path)
    assert check_output_folder("--out", "newC/sub") == "newC/sub"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "lp").symlink_to("/proc/self/fd")
    with pytest.raises(UserError, match="lp/../zz: "):
        check_output_folder("--out", "lp/../zz")
