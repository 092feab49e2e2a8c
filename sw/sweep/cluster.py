"""Where a sweep's runs go: this process, a LocalCluster, a running Dask scheduler, or dask-jobqueue.

* ``serial``: every run in this process, one after the other (no Dask);
* ``local[:N]``: a :class:`distributed.LocalCluster` of ``N`` worker processes
  (default: one per core) with one thread each: the model backend is
  Python, so processes, not threads, run it in parallel;
* a scheduler address (``tcp://HOST:8786``): the workers someone started
  (``dask scheduler`` and ``dask worker``, on any machines that have this
  checkout and its virtualenv at the same path);
* ``slurm``, ``lsf``, ``sge`` or ``pbs``: dask-jobqueue submits worker jobs
  with the options given (:func:`jobqueue_cluster`).

Every scheduler this module starts takes one task per worker thread at a
time (``distributed.scheduler.worker-saturation`` 1.0), so that a worker's
death makes only the run it was running suspect, and gives up on a run
after it has killed ``allowed_failures + 1`` workers
(``distributed.scheduler.allowed-failures``): the run fails with
:class:`distributed.KilledWorker` and the rest of the sweep goes on.
"""

import contextlib
import logging
import os
import sys

__all__ = ["JOBQUEUES", "jobqueue_cluster", "local_cluster", "open_client", "parse_cluster"]

#: ``--jobqueue`` names and their dask-jobqueue classes.
JOBQUEUES = {"slurm": "SLURMCluster", "lsf": "LSFCluster", "sge": "SGECluster", "pbs": "PBSCluster"}


def _config(allowed_failures):
    import dask
    cfg = {"distributed.scheduler.worker-saturation": 1.0}
    if allowed_failures is not None:
        cfg["distributed.scheduler.allowed-failures"] = int(allowed_failures)
    return dask.config.set(cfg)


def parse_cluster(text):
    """``("serial", None)`` or ``("local", N or None)`` from ``--cluster``; ValueError otherwise."""
    name, _, n = str(text).partition(":")
    if name == "serial" and not n:
        return "serial", None
    if name == "local":
        if not n:
            return "local", None
        if n.isdigit() and int(n) >= 1:
            return "local", int(n)
    raise ValueError(f"--cluster {text!r}: expected local, local:N (N workers, N >= 1) or serial")


def local_cluster(n_workers=None, allowed_failures=None):
    """A LocalCluster of ``n_workers`` single-threaded worker processes (default: one per core)."""
    from distributed import LocalCluster
    with _config(allowed_failures):
        return LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                            dashboard_address=None, silence_logs=logging.ERROR)


def jobqueue_cluster(kind, options=None, allowed_failures=None):
    """A dask-jobqueue cluster of ``kind`` (``slurm``, ``lsf``, ``sge`` or ``pbs``) made with ``options``.

    Defaults, each overridden by an option of the same name: ``cores=1``,
    ``memory="4GiB"``, ``processes`` = ``cores`` (one single-threaded worker
    process per core: the model backend is Python), ``python`` = this
    interpreter (the workers need this checkout's virtualenv, on a shared
    filesystem) and ``job_name="siov-sweep"``. It starts the scheduler here
    and submits no job until it is scaled. ValueError names an unknown kind
    or an option the class refuses.
    """
    import dask_jobqueue
    if kind not in JOBQUEUES:
        raise ValueError(f"--jobqueue {kind!r}: choose one of {', '.join(JOBQUEUES)}")
    cls = getattr(dask_jobqueue, JOBQUEUES[kind])
    opts = {"cores": 1, "memory": "4GiB", "python": sys.executable, "job_name": "siov-sweep"}
    opts.update(options or {})
    opts.setdefault("processes", opts["cores"])
    with _config(allowed_failures):
        try:
            return cls(**opts)
        except (TypeError, ValueError) as e:
            raise ValueError(f"--jobqueue {kind}: {str(e).splitlines()[0]}") from None


@contextlib.contextmanager
def open_client(cluster="local", scheduler=None, jobqueue=None, options=None, jobs=1, allowed_failures=None):
    """A Dask client for the sweep, or None for ``serial``; closes what it started on exit.

    ``jobs`` is how many jobs dask-jobqueue submits (each with ``processes`` workers).
    """
    from distributed import Client
    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if jobqueue:
        made = jobqueue_cluster(jobqueue, options, allowed_failures)
        made.scale(jobs=jobs)
    else:
        kind, n = parse_cluster(cluster)
        if kind == "serial":
            yield None
            return
        made = local_cluster(n, allowed_failures)
    try:
        client = Client(made)
        try:
            yield client
        finally:
            client.close()
    finally:
        made.close()
