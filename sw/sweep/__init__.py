"""``siov sweep``: seed and parameter sweeps of a scenario, and regression seeds, on Dask distributed.

One run (a scenario's parameter point, a seed, a backend) is the unit of
work; it returns the small results dict of ``siov run``. Runs go to this
process, a LocalCluster, a running Dask scheduler or a farm through
dask-jobqueue (:mod:`~siov.sw.sweep.cluster`); their results are cached by
what they depend on (:mod:`~siov.sw.sweep.cache`), so a rerun computes only
what is missing and a stopped sweep resumes. The pieces:

* :mod:`~siov.sw.sweep.spec`: ``--seeds`` and ``--set``, checked against the
  scenario schema, and the parameter points;
* :mod:`~siov.sw.sweep.work`: the units of work run on the workers;
* :mod:`~siov.sw.sweep.driver`: the sweep, and its output folder;
* :mod:`~siov.sw.sweep.stats`: metrics, statistics, tables and plots;
* :mod:`~siov.sw.sweep.regress`: seeds of a cocotb regression, with the
  JUnit XML and the functional coverage merged;
* :mod:`~siov.sw.sweep.command`: the ``siov sweep`` command line.
"""

from .driver import Outcome, Sweep, SweepInterrupted, plan, run_sweep
from .spec import SweepError, parse_seeds, parse_set

__all__ = ["plan", "run_sweep", "Sweep", "Outcome", "SweepInterrupted", "SweepError", "parse_seeds", "parse_set"]
