"""The registry's event notification endpoint: POST /service/notifications with the shared secret."""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from registries import events


def _authorized(request: HttpRequest) -> bool:
    """True when the request carries the registry's shared secret (compared in constant time)."""
    expected = f"Bearer {settings.REGISTRY_NOTIFY_SECRET}".encode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


@csrf_exempt
@require_POST
def notifications(request: HttpRequest) -> JsonResponse:
    """Record an envelope of registry events for the worker; 401 without the secret, 400 when not an envelope."""
    if not _authorized(request):
        return JsonResponse({"detail": "Notifications need the registry's shared secret."}, status=401)
    try:
        envelope = json.loads(request.body)
    except ValueError:
        return JsonResponse({"detail": "The body is not JSON."}, status=400)
    if not isinstance(envelope, dict):
        return JsonResponse({"detail": 'Expected an envelope: {"events": [...]}.'}, status=400)
    return JsonResponse({"received": events.receive(envelope)})
