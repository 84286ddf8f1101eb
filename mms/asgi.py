import os

import django
from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mms.settings.base")
django.setup(set_prefix=False)

from mms.observability import instrument_web  # noqa: E402

instrument_web()  # before the handler is built: it adds a middleware
application = ProtocolTypeRouter({"http": get_asgi_application()})
