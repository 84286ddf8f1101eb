import os

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mms.settings.base")
django.setup(set_prefix=False)

from mms.observability import instrument_web  # noqa: E402

instrument_web()  # before the handler is built: it adds a middleware
application = get_wsgi_application()
