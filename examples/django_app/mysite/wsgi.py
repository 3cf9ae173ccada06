"""WSGI entry point (the dashboard is ASGI: run `python manage.py steep web` beside it)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_wsgi_application()
