import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from classifier.limits import body_limits as classifier_body_limits  # noqa: E402
from gateway.app import application as gateway_app  # noqa: E402
from gateway.app import handles as gateway_handles  # noqa: E402
from sparkportal.lib.bodylimit import body_limit_wrap  # noqa: E402
from sparkportal.routing import websocket_urlpatterns  # noqa: E402

# Large bodies are refused before Django spools them to disk (see sparkportal/lib/bodylimit.py).
django_limited_app = body_limit_wrap(django_asgi_app, classifier_body_limits)


async def http_app(scope, receive, send):
    # The OpenAI-compatible /v1 hot path skips Django's request stack entirely (see gateway/app.py).
    if gateway_handles(scope["path"]):
        return await gateway_app(scope, receive, send)
    return await django_limited_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "lifespan": gateway_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
