"""A message on stderr when something the user waits for turns out slow.

The first run on a fresh clone compiles the simulator (numba, cached on disk afterwards);
that takes about a minute on two cores and must not look like a hang. ``when_slow`` prints
its message only if the work has not finished after ``after`` seconds, so warm runs stay
quiet.
"""
import contextlib
import sys
import threading

COMPILING = "compiling the simulator, first run only (about a minute; cached afterwards) ..."


@contextlib.contextmanager
def when_slow(message, after=2.0, stream=None):
    done = threading.Event()

    def say():
        if not done.wait(after):
            print(message, file=stream or sys.stderr, flush=True)

    thread = threading.Thread(target=say, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
