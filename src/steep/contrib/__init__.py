"""Ready-made middleware and framework integrations, each in its own module.

Nothing here is imported by steep itself: a module is loaded only when an
application names it, and one that needs a third-party package says which
`pip install` brings it (see `steep.contrib._optional`). docs/middleware.md and
docs/integrations.md describe them.
"""
