"""The built-in features: each one module or one small package holding its client side
(the job options it declares, what it writes into the envelope, how it enqueues) and its
worker side (its hook), plugged into the core through `steep.hooks`."""
