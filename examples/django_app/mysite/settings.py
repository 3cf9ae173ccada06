"""Settings of the example project (not for production: DEBUG on, a fixed key)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "mysite.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "steep.contrib.django",
    "shop",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", BASE_DIR / "db.sqlite3"),
    }
}

# steep's settings (the keys of steep.toml). The Redis URL comes from STEEP_REDIS_URL
# when set; without one, steep starts its embedded server.
STEEP = {
    "queues": ["default", "mail"],
    "middleware": ["steep.contrib.logging:LogContext"],
}

# Mail goes through steep's send_mail job: the worker sends it with the [mail] table of
# steep.toml, and intercepts it on staging ([staging.mail], docs/mail.md).
EMAIL_BACKEND = "steep.contrib.django.mail.EmailBackend"
DEFAULT_FROM_EMAIL = "shop@example.com"
