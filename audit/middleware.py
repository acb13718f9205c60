"""Records the client's address for the audit entries written while serving a request."""

from axes.helpers import get_client_ip_address

from audit import context


class AuditAddressMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The login lockout's own resolution (giftdesk/settings.py AXES_IPWARE_*): behind
        # a proxy, the address the proxy saw, never a header a client could forge.
        token = context.address_set(get_client_ip_address(request) or "")
        try:
            return self.get_response(request)
        finally:
            context.address_reset(token)
