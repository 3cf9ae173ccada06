"""The job of benchmarks/storm.py: 10 ms of work, each run counted."""

import time

from steep import job
from steep.connection import get_client


@job(queue="storm")
def work(i: int) -> None:
    time.sleep(0.01)
    pipe = get_client().pipeline(transaction=False)
    pipe.incr("storm:runs")
    pipe.sadd("storm:seen", i)
    pipe.execute()
