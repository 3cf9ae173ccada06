"""Signatures, chains and groups: workflows built on batches (steep.features.batches.batch).

A `Signature` is one job call written down instead of made: `send.s(42)`. It is
immutable and JSON (it travels inside envelopes: a chain's next steps ride in the
meta of the step that runs now). `chain(a.s(1), b.s(), c.s())` runs the steps one
after the other, each getting the previous step's return value as an extra first
argument (`.si()` makes a step that ignores it); `group(a.s(1), a.s(2))` runs its
members in parallel; `group(...) | done.s()` calls `done` with the list of their
results, in the group's order. See docs/batches.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from steep import signature as _signature
from steep.signature import Signature

if TYPE_CHECKING:
    from steep.features.batches.batch import Batch


class Chain:
    """Steps run one after the other; a step that dies stops the chain."""

    def __init__(self, steps: list[Signature]) -> None:
        if not steps:
            raise ValueError("a chain needs at least one step")
        for step in steps:
            if not isinstance(step, Signature):
                raise TypeError(
                    f"chain steps are signatures (job.s(...)), got {step!r}; "
                    "a group inside a chain is not supported"
                )
        self.steps = steps

    def __or__(self, other: Signature | Chain) -> Chain:
        return chain(self, other)

    def __repr__(self) -> str:
        return "chain(" + ", ".join(s.name for s in self.steps) + ")"

    def enqueue(self, *, description: str = "", **batch_options: Any) -> Batch:
        """Start the chain: a batch (kind `chain`) whose members are its steps as they run.

        `batch_options` are Batch's (on_complete, on_success, meta, ttl, parent)."""
        from steep.features.batches.batch import Batch

        first, rest = self.steps[0], self.steps[1:]
        b = Batch(description=description, kind="chain", keep_results=True, **batch_options)
        b.steps = len(self.steps)
        with b:
            b.add(first, chain_rest=rest)
        return b


class Group:
    """Members run in parallel; `group | callback.s()` calls back with their results."""

    def __init__(self, members: list[Signature], callback: Signature | None = None) -> None:
        for member in members:
            if not isinstance(member, Signature):
                raise TypeError(f"group members are signatures (job.s(...)), got {member!r}")
        self.members = members
        self.callback = callback

    def __or__(self, callback: Signature) -> Group:
        if not isinstance(callback, Signature):
            raise TypeError(f"a group is followed by one signature, got {callback!r}")
        if self.callback is not None:
            raise ValueError("this group already has a callback")
        return Group(self.members, callback)

    def __repr__(self) -> str:
        tail = f" | {self.callback.name}" if self.callback else ""
        return f"group({len(self.members)} jobs){tail}"

    def enqueue(self, *, description: str = "", **batch_options: Any) -> Batch:
        """Start the group: a batch (kind `group`) keeping its members' results.

        With a callback, it is the batch's on_success and gets the list of results
        (in the group's order) as its first argument."""
        from steep.features.batches.batch import Batch

        if self.callback is not None:
            if "on_success" in batch_options:
                raise ValueError("group | callback already sets on_success")
            batch_options["on_success"] = self.callback
        b = Batch(description=description, kind="group", keep_results=True, **batch_options)
        with b:
            for member in self.members:
                b.add(member)
        return b


def chain(*steps: Signature | Chain) -> Chain:
    """`chain(a.s(1), b.s(), c.s())`: b gets a's result first, c gets b's."""
    flat: list[Signature] = []
    for step in steps:
        flat.extend(step.steps if isinstance(step, Chain) else [step])
    return Chain(flat)


def group(*members: Signature | Iterable[Signature]) -> Group:
    """`group(a.s(1), a.s(2))` or `group(a.s(i) for i in ...)`; `group(...) | done.s()`
    calls done([r1, r2])."""
    if len(members) == 1 and not isinstance(members[0], Signature):
        return Group(list(members[0]))
    return Group(list(members))  # type: ignore[arg-type]


def chord(members: Group | list[Signature], callback: Signature) -> Group:
    """`chord(group(...), done.s())` is `group(...) | done.s()`."""
    g = members if isinstance(members, Group) else group(*members)
    return g | callback


_signature.set_composer(lambda left, right: chain(left, right))
