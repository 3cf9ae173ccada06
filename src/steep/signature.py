"""A job call written down instead of made: `send.s(42)` is a `Signature`.

It is immutable and JSON (it travels inside envelopes: a chain's next steps ride in
the meta of the step that runs now), and it carries only the options an envelope
needs. Signatures are what batches, chains and groups (steep.features.batches) are
made of; `a.s() | b.s()` composes them with the composer that feature registers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from steep import client
from steep.job import Envelope, Job, encode_envelope
from steep.options import JobOptions

# the JobOptions a signature carries (what the envelope needs; retry_on and backoff
# are read from the registered function on the worker, unless backoff was given per call)
CARRIED = ("queue", "retries", "timeout", "result_ttl", "tags")

# what `signature | other` makes (a chain), set by steep.features.batches
_composer: Callable[[Any, Any], Any] | None = None


def set_composer(compose: Callable[[Any, Any], Any]) -> None:
    global _composer
    _composer = compose


class Signature(msgspec.Struct, frozen=True, omit_defaults=True):
    """One job call, not yet made: name, arguments, options."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    immutable: bool = False  # True: a chain does not pass the previous result to it

    def set(self, **options: Any) -> Signature:
        """The same call with some options changed (queue, retries, timeout, ...)."""
        unknown = set(options) - set(CARRIED)
        if unknown:
            raise TypeError(f"a signature carries only {', '.join(CARRIED)}; not {unknown}")
        self.job_options(options)  # validates
        return msgspec.structs.replace(self, options={**self.options, **options})

    def job_options(self, overrides: dict[str, Any] | None = None) -> JobOptions:
        opts = {**self.options, **(overrides or {})}
        if "tags" in opts:
            opts["tags"] = tuple(opts["tags"])
        # replace() marks a backoff given per call, so the envelope carries it
        return _DEFAULTS.replace(**opts)

    def with_first(self, value: Any) -> Signature:
        """The call a chain makes: the previous result first, unless immutable."""
        if self.immutable:
            return self
        return msgspec.structs.replace(self, args=(value, *self.args))

    def enqueue(self) -> Job:
        """Make the call now, on its own (no batch)."""
        return client.enqueue(self.name, self.job_options(), self.args, self.kwargs)

    def __or__(self, other: Any) -> Any:
        if _composer is None:
            return NotImplemented
        return _composer(self, other)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return msgspec.convert(data, cls)


_DEFAULTS = JobOptions()


def signature(
    name: str, opts: JobOptions, args: tuple[Any, ...], kwargs: dict[str, Any], immutable: bool
) -> Signature:
    options: dict[str, Any] = {}
    for key in CARRIED:
        value = getattr(opts, key)
        if value != getattr(_DEFAULTS, key) or key in ("queue", "retries"):
            options[key] = list(value) if key == "tags" else value
    for key in opts.per_call:  # backoff given per call (`.options(backoff=...)`)
        options[key] = getattr(opts, key)
    sig = Signature(name, tuple(args), dict(kwargs), options, immutable)
    # fail here, naming the argument, rather than when the step is finally enqueued
    encode_envelope(Envelope(id="", name=name, queue="", args=list(args), kwargs=dict(kwargs)))
    return sig
