"""Batches (a set of jobs with callbacks when all are done), and the workflows built on
them: chains, groups and chords."""

from steep.features.batches.batch import Batch, batch, current_batch
from steep.features.batches.records import BatchStatus
from steep.features.batches.workflow import Signature, chain, chord, group

__all__ = ["Batch", "BatchStatus", "Signature", "batch", "chain", "chord", "current_batch", "group"]
