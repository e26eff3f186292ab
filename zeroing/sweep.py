"""``zeroing sweep``: the cells of a comparison run on Dask workers.

Cells are independent and idempotent: each writes its own result file atomically, a re-run
skips cells whose file is complete and made from the same spec (verified, not just present),
and a worker that dies loses only its cell (Dask reschedules it). The report is built from
the files exactly as ``compare`` builds it, so the table is the same as a serial run's.
Workers are separate processes started with ``spawn``: CUDA never sees a forked process.
"""
import logging
import os
import signal

from .compare import compare, execute_cell
from .validate import UserError

#: How long ``--scheduler ADDRESS`` may take to answer before the sweep gives up.
CONNECT_TIMEOUT_S = 10


#: Test-only fault injection: when set to a path that does not exist yet, the first task to
#: see it creates the file and kills its worker process (as an OOM kill would).
KILL_ONCE_ENV = "ZEROING_SWEEP_KILL_ONCE"


def _task(cfg, w, label, seed, path):
    # Runs in a spawned worker process.
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            os._exit(1)
        except FileExistsError:
            pass
    return execute_cell(cfg, w, label, seed, path)


def dask_runner(workers=2, scheduler=None, log=print):
    def run(cfg, missing, progress):
        if not missing:
            return
        # No more worker processes than runs: each idle one only holds memory.
        nr_workers = min(workers, len(missing))
        import dask
        from dask.distributed import Client, LocalCluster, as_completed
        from tqdm import tqdm
        with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                              "distributed.scheduler.allowed-failures": 3}):
            if scheduler:
                try:
                    client, cluster = Client(scheduler, timeout=CONNECT_TIMEOUT_S), None
                except (OSError, TimeoutError, ValueError) as e:
                    raise UserError(f"--scheduler {scheduler}: cannot reach a Dask scheduler "
                                    f"there within {CONNECT_TIMEOUT_S} s ({e})") from None
            else:
                # Ctrl-C reaches every process of the terminal's group: the workers, started
                # ignoring it (an ignored signal stays ignored across exec), leave it to this
                # process, which closes them; else each printed its own tracebacks.
                # Their logs are silenced below CRITICAL: a failed task comes back through its
                # future, and on Ctrl-C a worker's heartbeat to the closing scheduler logged
                # an ERROR with its traceback.
                # Blocked as well as ignored meanwhile: Linux keeps a blocked signal pending
                # even when it is ignored, so a Ctrl-C during the start is not lost.
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    cluster = LocalCluster(n_workers=nr_workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None,
                                           silence_logs=logging.CRITICAL)
                finally:
                    signal.signal(signal.SIGINT, previous)
                    interrupted = signal.SIGINT in signal.sigpending()
                    if interrupted:
                        signal.sigwait({signal.SIGINT})
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                if interrupted:
                    cluster.close()
                    raise KeyboardInterrupt
                client = Client(cluster)
            bar = None
            try:
                fewer = f" (--workers {workers}: no more than the runs)" \
                    if nr_workers < workers else ""
                log(f"dask: {len(missing)} runs on "
                    f"{scheduler or f'a local cluster of {nr_workers} workers{fewer}'}")
                futures = [client.submit(_task, cfg, w, label, seed, path, pure=False, retries=2)
                           for w, label, seed, path, _ in missing]
                bar = tqdm(total=len(futures), unit="run", disable=not progress, desc=cfg["name"])
                for fut in as_completed(futures):
                    fut.result()
                    bar.update(1)
                bar.close()
            except KeyboardInterrupt:
                # The nannies log each worker they kill; the one-line message says it all,
                # on a line of its own after the bar.
                logging.getLogger("distributed").setLevel(logging.CRITICAL)
                if bar is not None:
                    bar.close()
                raise
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    return run


def sweep(cfg, workers=2, scheduler=None, out=None, progress=True, log=print, config=None):
    if workers < 1:
        raise UserError(f"--workers: {workers!r} is not allowed: an integer from 1 to 256")
    return compare(cfg, out, progress, log, runner=dask_runner(workers, scheduler, log),
                   config=config)
