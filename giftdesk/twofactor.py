"""Two-factor login for staff (TOTP, django-otp): the login form, enrolment, and the rule.

A user with a confirmed TOTP device gives its code at login. With GIFTDESK_REQUIRE_2FA on,
administrators and Approvers must have one: until their session is verified by a device,
every admin page sends them to the two-factor page, where they enrol (or, having a device,
give its code). A lost device is removed by an administrator (Django OTP -> TOTP devices).
"""

import base64

import segno
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.signals import user_login_failed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.batch_access import is_approver

def must_use_two_factor(user) -> bool:
    """Read per request, so the setting can change without a restart (and in tests)."""
    if not settings.GIFTDESK_REQUIRE_2FA or not user.is_authenticated:
        return False
    return user.is_superuser or is_approver(user)


class AdminLoginForm(OTPAdminAuthenticationForm):
    """Username, password and, for a user with a device, the code from it; in one step."""

    otp_token = forms.CharField(
        required=False, label="Authentication code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    otp_error_messages = dict(
        OTPAdminAuthenticationForm.otp_error_messages,
        token_required="Enter the 6-digit code from your authenticator app.",
        invalid_token="That code is not right. Enter the code your authenticator app shows now.",
    )

    def clean(self):
        # AdminAuthenticationForm checks the password (axes watches that); the code is asked
        # only of users who have a device, so staff without one log in as before.
        self.cleaned_data = super(OTPAdminAuthenticationForm, self).clean()
        user = self.get_user()
        if user is not None and list(devices_for_user(user)):
            try:
                self.clean_otp(user)
            except forms.ValidationError as error:
                if error.code == "invalid_token":
                    # A wrong code counts towards the lockout, like a wrong password.
                    user_login_failed.send(sender=__name__, request=self.request,
                                           credentials={"username": user.get_username()})
                raise
        return self.cleaned_data

    def _chosen_device(self, user):
        # One device (the usual case) needs no choosing: the code is checked against it.
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class RequireTwoFactorMiddleware:
    """Sends a user who must use two-factor but is not verified to the two-factor page."""

    def __init__(self, get_response):
        self.get_response = get_response

    @staticmethod
    def open_paths() -> set[str]:
        """Pages an unverified user must still reach: enrolment, logging in and out."""
        return {reverse("admin-two-factor"), reverse("admin:logout"), reverse("admin:login"),
                reverse("admin:jsi18n")}

    def __call__(self, request):
        # Cheapest tests first: most requests are not the admin's, or come from users
        # (or installations) the rule does not apply to.
        if (request.path.startswith(reverse("admin:index")) and must_use_two_factor(request.user)
                and not request.user.is_verified() and request.path not in self.open_paths()):
            return redirect("admin-two-factor")
        return self.get_response(request)


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Code from your authenticator app", max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "autofocus": True}),
    )


def two_factor_view(request):
    """Enrol a TOTP device (QR code and secret, confirmed by a first code), or verify one."""
    user = request.user
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if confirmed is not None and user.is_verified():
        return _render(request, "on", device=confirmed)

    # Not yet enrolled: one pending device per user, kept across reloads so the QR code a
    # phone has scanned stays valid until it is confirmed.
    device = confirmed or TOTPDevice.objects.filter(user=user, confirmed=False).first() \
        or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = TokenForm(request.POST or None)
    if form.is_valid():
        if device.verify_token(form.cleaned_data["token"].strip()):
            if not device.confirmed:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                messages.success(request, "Two-factor login is on: from now on, log in with a code "
                                          "from your authenticator app.")
            otp_login(request, device)
            return redirect("admin:index")
        form.add_error("token", "That code is not right. Check that the phone's clock is correct "
                                "and enter the code the app shows now.")
    if device.confirmed:
        return _render(request, "verify", form=form)
    return _render(request, "enrol", form=form, qr_svg=_qr_svg(device.config_url),
                   secret=base64.b32encode(device.bin_key).decode())


def _qr_svg(uri: str) -> str:
    # segno draws the QR code here, as inline SVG: the secret never leaves the server.
    return mark_safe(segno.make(uri, micro=False).svg_inline(scale=5, border=2,
                                                              title="Two-factor QR code"))


def _render(request, state: str, **context):
    return TemplateResponse(request, "admin/two_factor.html", {
        **admin.site.each_context(request),
        "title": "Two-factor login",
        "state": state,
        "required": must_use_two_factor(request.user),
        **context,
    })
