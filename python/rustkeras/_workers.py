"""The engine's threads in a worker process of joblib, Dask or Ray.

The engine runs its kernels on rayon's global thread pool, which takes `RAYON_NUM_THREADS`
threads (all cores when unset) and reads that variable once: when the first parallel kernel
builds the pool, i.e. at a process's first `fit` (importing rustkeras, building, compiling and
loading a model start no pool). Folds or searches that run as several worker processes on one
machine would each take every core, processes x cores threads in all. Each of those schedulers
tells its worker processes their share of the cores the same way, in the variable native
thread pools (OpenMP) read: joblib's process backends (loky, multiprocessing) set
`OMP_NUM_THREADS` to cores // n_jobs, Dask's nanny sets it to 1 (a Dask worker runs one task
per thread and expects each to use one core), Ray to the CPUs a task or actor reserves. So a
worker process gives rayon that share, unless `RAYON_NUM_THREADS` already says otherwise (set
it where the workers start to give each more: `RAYON_NUM_THREADS=8 dask worker ...`).

`size_pool_in_worker` is called where rustkeras knows it runs in a worker, before that
process's first fit: by `cross_validate`'s fold when the fold runs in another process than the
call, and by a scikit-learn estimator unpickled in another process than the one that pickled it.

The invariant: a process's pool size is decided at its first fit and never changes. A reused
worker keeps the pool its first fold built, which is right for later folds because the share
it was given does not change while it lives: loky replaces its workers whenever the
environment joblib asks for changes (a different n_jobs or `inner_max_num_threads`), and a Dask
or Ray worker's threads are fixed when it starts. Once `RAYON_NUM_THREADS` is set (by the user,
or by an earlier fold in this process) it is left alone; a process that trained a model before
any of this ran keeps the pool it built then.
"""

import os
from typing import Optional

_SHARE_VARIABLE = "OMP_NUM_THREADS"


def worker_share() -> Optional[int]:
    """The threads the scheduler gave this process (`OMP_NUM_THREADS`), or None if unset or invalid."""
    value = os.environ.get(_SHARE_VARIABLE, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


def size_pool_in_worker() -> Optional[int]:
    """Sets `RAYON_NUM_THREADS` to the worker's share of the cores, before the engine's pool
    exists, unless it is set already. Returns the value that holds for this process (None: all
    cores)."""
    current = os.environ.get("RAYON_NUM_THREADS")
    if current is not None:
        return int(current) if current.strip().isdigit() else None
    share = worker_share()
    if share is not None:
        os.environ["RAYON_NUM_THREADS"] = str(share)
    return share
