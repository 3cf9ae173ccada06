"""Ids fixed in advance, so that a job that runs again makes the same batches and members.

`derived_id` names a thing after a seed and a label (a batch's callbacks, a chain's next
step); `mint_id` hands out new ids, derived from the running job's own id when called
inside a job (the n-th id one run mints is the same in every run of that job).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from steep.context import JobContext, current_job
from steep.job import new_job_id


def derived_id(seed: str, label: str) -> str:
    """A job or batch id fixed by `seed` and `label`, so a call made again after a
    crash names the same thing (and adds or enqueues nothing twice). It keeps the
    seed's time prefix, so it still sorts and dates like a steep id."""
    digest = hashlib.sha1(f"{seed}:{label}".encode()).hexdigest()
    if len(seed) == 26 and all(c in "0123456789abcdef" for c in seed[:14]):
        return seed[:14] + digest[:12]
    return digest[:26]


# per running job: (its context, how many ids it has minted in this run)
_minted: OrderedDict[str, tuple[JobContext, int]] = OrderedDict()
_minted_lock = threading.Lock()


def mint_id() -> str:
    """A new id; inside a job, the n-th id that run mints is fixed by the job's id, so a
    job that runs again (crash, retry) makes the same batches and members."""
    ctx = current_job()
    if ctx is None:
        return new_job_id()
    with _minted_lock:  # jobs in several threads mint at once
        entry = _minted.get(ctx.id)
        count = entry[1] + 1 if entry is not None and entry[0] is ctx else 1
        _minted[ctx.id] = (ctx, count)
        _minted.move_to_end(ctx.id)
        while len(_minted) > 4096:
            _minted.popitem(last=False)
    return derived_id(ctx.id, f"mint:{count}")
