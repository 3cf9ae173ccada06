"""Sets Django up when imported: the first module every steep worker process of a Django
project imports (`manage.py steep_worker` names it), so job modules can use models and
`settings.STEEP` is applied. DJANGO_SETTINGS_MODULE comes from the environment."""

import django

django.setup()
