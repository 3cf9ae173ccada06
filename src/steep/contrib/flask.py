"""Flask integration: steep settings from `app.config`, jobs run inside the app context.

    steep_ext = Steep()

    def create_app():
        app = Flask(__name__)
        app.config["STEEP_QUEUES"] = ["default", "mail"]
        steep_ext.init_app(app)
        return app

`STEEP_<SETTING>` keys of `app.config` (STEEP_REDIS_URL, STEEP_QUEUES,
STEEP_MIDDLEWARE...) configure steep. Every job runs inside the app context of
the last app initialised in the worker process, so jobs use `current_app` and
extensions (Flask-SQLAlchemy's session, Flask-Mail) as a view would; the worker
imports a module that creates the app (`steep worker app.worker`). The dashboard,
an ASGI app, can be mounted into Flask's WSGI app with `mount_dashboard` (through
a2wsgi), or run beside it with `steep web`. See docs/integrations.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from steep import middleware
from steep.contrib._optional import require
from steep.settings import FIELDS, ConfigError, configure

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.job import Job

require("flask", extra="flask", feature="steep.contrib.flask")

__all__ = ["AppContext", "Steep", "mount_dashboard", "send_mail"]

PREFIX = "STEEP_"


class AppContext(middleware.Middleware):
    """Pushes the app context of `app` around each job's run."""

    def __init__(self, app: Any = None) -> None:
        self.app = app

    @contextlib.contextmanager
    def execute(self, job: JobContext) -> Iterator[None]:
        app = self.app
        if app is None:
            yield
            return
        with app.app_context():
            yield


# One per process: with an app factory, tests create many apps, and jobs should run in
# the newest, not in every one of them nested.
_app_context = AppContext()


class Steep:
    """The Flask extension: `Steep(app)`, or `Steep()` then `init_app(app)` in a factory."""

    def __init__(self, app: Any = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        values = {
            key[len(PREFIX) :].lower(): value
            for key, value in app.config.items()
            if key.startswith(PREFIX) and key[len(PREFIX) :].lower() in FIELDS
        }
        if values:
            try:
                configure(**values)
            except ConfigError as exc:
                raise ConfigError(f"app.config: {exc} (from the STEEP_* keys)") from None
        _app_context.app = app
        if not any(mw is _app_context for mw in middleware.installed()):
            middleware.add(_app_context)
        app.extensions["steep"] = self


def mount_dashboard(app: Any, path: str = "/steep", **options: Any) -> None:
    """Serve steep's dashboard at `path` of the Flask app's WSGI server.

    `options` go to `steep.web.create_app` (username, password, token, read_only,
    allow_anonymous). Needs a2wsgi (`pip install 'steep[flask]'`), which runs the
    ASGI dashboard on an event loop in a thread of the WSGI process.
    """
    a2wsgi = require("a2wsgi", extra="flask", feature="steep.contrib.flask.mount_dashboard")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from steep.web import create_app

    dashboard = a2wsgi.ASGIMiddleware(create_app(**options))
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {path.rstrip("/"): dashboard})


def send_mail(
    to: str | list[str],
    subject: str,
    *,
    template: str | None = None,
    body: str | None = None,
    html: str | None = None,
    **options: Any,
) -> Job:
    """`steep.mail.send` from a Flask app: `template="mail/welcome"` renders
    `mail/welcome.txt` (the text part) and, when it exists, `mail/welcome.html` with the
    keyword arguments that `steep.mail.send` does not take; the sender defaults to
    `app.config["MAIL_DEFAULT_SENDER"]`, then to `[mail] sender`."""
    from flask import current_app, render_template
    from jinja2 import TemplateNotFound

    from steep import mail

    known = ("cc", "bcc", "attachments", "sender", "headers")
    context = {key: value for key, value in options.items() if key not in known}
    send_options = {key: value for key, value in options.items() if key in known}
    if template is not None:
        body = render_template(f"{template}.txt", **context)
        try:
            html = render_template(f"{template}.html", **context)
        except TemplateNotFound:
            html = None
    if body is None:
        raise TypeError("send_mail: give body=... or template=...")
    send_options.setdefault("sender", current_app.config.get("MAIL_DEFAULT_SENDER"))
    return mail.send(to, subject, body, html=html, **send_options)
