"""ASGI entry point: Django, with steep's dashboard at /steep.

STEEP_WEB_PASSWORD=secret uvicorn mysite.asgi:application
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_app = get_asgi_application()  # sets Django up: import models and steep after it

from steep.contrib.django.asgi import with_dashboard  # noqa: E402

# user `steep` (or STEEP_WEB_USERNAME), password from STEEP_WEB_PASSWORD
application = with_dashboard(django_app, path="/steep")
