"""The built-in features: each one module or one small package holding its client side
(the job options it declares, what it writes into the envelope, how it enqueues) and its
worker side (its hook), plugged into the core through `steep.hooks`."""

# Each module registers its hooks (and its options, its settings checks) on import.
from steep.features import cron, expiry, iterable, limits, priority, progress, unique  # noqa: F401
from steep.features.batches import hook as _batch_hook  # noqa: F401
