"""A batch with callbacks, a chain and a group with a callback.

Run a worker first, from this directory:   steep worker app.jobs
then:                                      python run.py
"""

from __future__ import annotations

from app.jobs import fetch, import_row, shout, strip_tags, summarize, total, word_count

from steep import batch, chain, group

# a batch: on_complete gets the batch's status once every member is done
with batch(description="import 5 rows", on_complete=summarize.s()) as b:
    for row in range(5):
        b.add(import_row.s(row))
print(b.callback_job("complete").result(timeout=15))

# a chain: each step gets the previous step's result as its first argument
c = chain(fetch.s("https://example.com"), strip_tags.s(), shout.s(suffix="!!")).enqueue()
print(c.wait(timeout=15).state, c.results()[-1])

# a group followed by a callback: the callback gets the results in order
texts = ["one", "two words", "and three words"]
g = (group(word_count.s(t) for t in texts) | total.s()).enqueue(description="count")
print(g.callback_job().result(timeout=15))
print(f"group {g.status().state}: {g.status().succeeded} of {g.status().total}")
