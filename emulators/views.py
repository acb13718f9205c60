"""Django adapter: serves the demo emulators under /emulators/<kind>/<path>.

Only routed when the app is installed (GIFTDESK_EMULATORS), so no per-request check.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from emulators.loopback import DropConnection, EmulatorRequest, EmulatorResponse
from emulators.registry import get_demo_emulator


@csrf_exempt  # provider APIs are called by machines with bearer tokens, not by browsers
def emulator_endpoint(request: HttpRequest, kind: str, rest: str) -> HttpResponse:
    try:
        emulator = get_demo_emulator(kind)
    except LookupError:
        raise Http404(f"No emulator for {kind!r}") from None
    emulator_request = EmulatorRequest(
        method=request.method or "GET",
        path="/" + rest,
        query={key: request.GET[key] for key in request.GET},
        headers=dict(request.headers),
        body=request.body,
    )
    try:
        response = emulator.handle(emulator_request)
    except DropConnection:
        # WSGI cannot close the socket without answering, so a "drop" fault becomes a bare
        # 502 here, as a proxy in front of a crashed server would answer. The
        # LoopbackServer used by the tests drops the connection for real.
        response = EmulatorResponse(502, b"", {"Content-Type": "text/plain"})
    return _to_django(response)


def _to_django(response: EmulatorResponse) -> HttpResponse:
    django_response = HttpResponse(response.body, status=response.status)
    for name, value in response.headers.items():
        django_response[name] = value
    return django_response
