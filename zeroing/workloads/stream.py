"""A small builder for event streams: simulated time, rows, references to allocations."""
import numpy as np

from ..events import (EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE,
                      EVENT_DTYPE, fault_gfp)


class Stream:
    def __init__(self, step_ns=1000):
        self.rows = []
        self.t = 0
        self.step_ns = step_ns

    def _add(self, op, order=0, gfp=0, ref=0, cost_ns=None):
        self.t += self.step_ns if cost_ns is None else cost_ns
        self.rows.append((self.t, op, order, 0, gfp, ref))
        return len(self.rows) - 1

    def fault(self, order=0, cost_ns=None, touched=0):
        """A user fault; the program then writes the first ``touched`` pages of the block
        (0: all of it)."""
        return self._add(EV_FAULT, order, fault_gfp(touched), cost_ns=cost_ns)

    def alloc(self, order, gfp, cost_ns=None):
        return self._add(EV_ALLOC, order, gfp, cost_ns=cost_ns)

    def free(self, ref, cost_ns=None):
        return self._add(EV_FREE, self.rows[ref][2], ref=ref, cost_ns=cost_ns)

    def inflate(self):
        return self._add(EV_INFLATE)

    def deflate(self, ref):
        return self._add(EV_DEFLATE, ref=ref)

    def idle(self, seconds, tick_s=1.0):
        """Time passes in ticks, so background work runs at its own deadlines; the last tick
        holds what is left of ``seconds``."""
        left, tick = int(round(seconds * 1e9)), int(tick_s * 1e9)
        while left > 0:
            self._add(EV_IDLE, cost_ns=min(tick, left))
            left -= tick

    def events(self):
        return np.array(self.rows, dtype=EVENT_DTYPE)
