"""Login security: lockout after repeated failures (django-axes), two-factor login for staff
(django-otp, TOTP), the Content-Security-Policy header, and session lifetime and cookies.

Every login here goes through the real admin login form, so axes sees a real request.
"""

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.project.test_settings import PRODUCTION, manage

LOGIN = reverse("admin:login")
INDEX = reverse("admin:index")
TWO_FACTOR = reverse("admin-two-factor")
PASSWORD = "correct horse battery staple"
LIMIT = 5  # GIFTDESK_LOGIN_FAILURE_LIMIT's default

pytestmark = pytest.mark.django_db


def log_in(client, username, password=PASSWORD, token="", address="198.51.100.7"):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": token,
                               "next": INDEX}, REMOTE_ADDR=address)


def staff(django_user_model, username, *, group=None, superuser=False):
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True,
                                                 is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def code(device, *, offset=0):
    token = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + offset)
    return f"{token:0{device.digits}d}"


def wrong_code(device):
    valid = {code(device, offset=offset) for offset in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1, 10) if f"{n:06d}" not in valid)


def logged_in(client):
    return client.get(INDEX).status_code == 200


# --- Lockout (finding 5) -------------------------------------------------------------------

def test_twenty_wrong_passwords_lock_the_account_after_the_limit_and_are_logged(
        client, django_user_model, caplog):
    staff(django_user_model, "sender")
    with caplog.at_level(logging.INFO, logger="axes"):
        answers = [log_in(client, "sender", password=f"guess-{n}") for n in range(20)]

    codes = [answer.status_code for answer in answers]
    assert codes[:LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, "enter a correct ..."
    assert set(codes[LIMIT - 1:]) == {429}, codes
    locked = answers[-1].content.decode()
    assert "This account is locked" in locked and "ask an" in locked and "30 minutes" in locked
    attempt = AccessAttempt.objects.get(username="sender", ip_address="198.51.100.7")
    assert attempt.failures_since_start >= LIMIT
    assert "guess-" not in attempt.post_data  # the passwords tried are never stored
    assert any("Locking out" in record.getMessage() and "sender" in record.getMessage()
               for record in caplog.records)
    assert not any("guess-" in record.getMessage() for record in caplog.records)


def test_the_right_password_is_refused_while_locked(client, django_user_model):
    staff(django_user_model, "sender")
    for n in range(LIMIT):
        log_in(client, "sender", password=f"guess-{n}")

    answer = log_in(client, "sender")
    assert answer.status_code == 429 and "This account is locked" in answer.content.decode()
    assert not logged_in(client)


def test_the_lock_is_per_username_and_address(client, django_user_model):
    staff(django_user_model, "sender")
    for n in range(LIMIT):
        log_in(client, "sender", password=f"guess-{n}")

    assert log_in(client, "sender", address="203.0.113.50").status_code == 302


def test_the_lock_lifts_after_the_cool_off(client, django_user_model):
    staff(django_user_model, "sender")
    for n in range(LIMIT):
        log_in(client, "sender", password=f"guess-{n}")
    assert log_in(client, "sender").status_code == 429

    # The cool-off (GIFTDESK_LOGIN_COOLOFF_MINUTES, 30) passes since the last failure.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))
    assert log_in(client, "sender").status_code == 302
    assert logged_in(client)


def test_an_administrator_unlocks_an_account_with_axes_reset_username(client, django_user_model):
    staff(django_user_model, "sender")
    for n in range(LIMIT):
        log_in(client, "sender", password=f"guess-{n}")
    assert log_in(client, "sender").status_code == 429

    call_command("axes_reset_username", "sender")
    assert log_in(client, "sender").status_code == 302


def test_administrators_see_the_lockouts_in_the_admin(client, admin_client, django_user_model):
    staff(django_user_model, "sender")
    for n in range(LIMIT):
        log_in(client, "sender", password=f"guess-{n}")

    page = admin_client.get(reverse("admin:axes_accessattempt_changelist"))
    assert page.status_code == 200 and "sender" in page.content.decode()


def test_behind_a_proxy_the_address_the_proxy_saw_counts_not_one_the_client_forged():
    script = (
        "from django.test import RequestFactory; from axes.helpers import get_client_ip_address; "
        "r = RequestFactory().post('/admin/login/', REMOTE_ADDR='10.0.0.2', "
        "HTTP_X_FORWARDED_FOR='6.6.6.6, 203.0.113.9'); print(get_client_ip_address(r))"
    )
    behind = manage("shell", "-v", "0", "-c", script, env={**PRODUCTION, "GIFTDESK_BEHIND_PROXY": "true"})
    direct = manage("shell", "-v", "0", "-c", script, env=PRODUCTION)
    assert behind.stdout.strip().splitlines()[-1] == "203.0.113.9", behind.stderr
    assert direct.stdout.strip().splitlines()[-1] == "10.0.0.2", direct.stderr


# --- Two-factor login (finding 5) ------------------------------------------------------------

@override_settings(GIFTDESK_REQUIRE_2FA=True)
@pytest.mark.parametrize("role", ["administrator", "Approvers"])
def test_an_administrator_or_approver_without_a_device_is_sent_to_enrol(client, django_user_model, role):
    if role == "administrator":
        staff(django_user_model, "boss", superuser=True)
    else:
        staff(django_user_model, "boss", group="Approvers")

    assert log_in(client, "boss").status_code == 302
    for page in (INDEX, reverse("admin:orders_batch_changelist"), reverse("admin:orders_order_changelist")):
        answer = client.get(page)
        assert answer.status_code == 302 and answer.url == TWO_FACTOR, page
    enrol = client.get(TWO_FACTOR).content.decode()
    assert "Your role requires two-factor login" in enrol and "<svg" in enrol


@override_settings(GIFTDESK_REQUIRE_2FA=True)
def test_a_sender_is_not_required_to_use_two_factor(client, django_user_model):
    staff(django_user_model, "sender", group="Senders")
    assert log_in(client, "sender").status_code == 302
    assert logged_in(client)


@override_settings(GIFTDESK_REQUIRE_2FA=False)
def test_without_the_requirement_an_administrator_logs_in_with_the_password_alone(client, django_user_model):
    staff(django_user_model, "boss", superuser=True)
    assert log_in(client, "boss").status_code == 302
    assert logged_in(client)


@override_settings(GIFTDESK_REQUIRE_2FA=True)
def test_an_administrator_enrols_with_a_first_code_and_then_reaches_the_admin(client, django_user_model):
    boss = staff(django_user_model, "boss", superuser=True)
    log_in(client, "boss")

    page = client.get(TWO_FACTOR).content.decode()
    device = TOTPDevice.objects.get(user=boss, confirmed=False)
    secret = page.split('id="two-factor-secret">')[1].split("<")[0]
    assert len(secret) == 32  # base32 of the 20-byte key, for typing it in by hand
    assert 'class="segno"' in page and "http" not in page.split('id="two-factor-qr">')[1].split("</div>")[0]

    refused = client.post(TWO_FACTOR, {"token": wrong_code(device)})
    assert refused.status_code == 200 and "That code is not right" in refused.content.decode()
    assert not TOTPDevice.objects.filter(user=boss, confirmed=True).exists()
    assert client.get(INDEX).status_code == 302

    device.refresh_from_db()
    device.throttle_reset()  # django-otp waits a second after a wrong code
    accepted = client.post(TWO_FACTOR, {"token": code(device)})
    assert accepted.status_code == 302 and accepted.url == INDEX
    assert TOTPDevice.objects.get(user=boss).confirmed
    assert logged_in(client)
    assert "Two-factor login is on" in client.get(TWO_FACTOR).content.decode()


def confirmed_device(user):
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


@override_settings(GIFTDESK_REQUIRE_2FA=True)
def test_a_user_with_a_device_logs_in_with_a_valid_code(client, django_user_model):
    device = confirmed_device(staff(django_user_model, "boss", superuser=True))

    answer = log_in(client, "boss", token=code(device))
    assert answer.status_code == 302 and answer.url == INDEX
    assert logged_in(client)


@override_settings(GIFTDESK_REQUIRE_2FA=True)
def test_a_user_with_a_device_is_refused_without_a_code_or_with_a_wrong_one(client, django_user_model):
    device = confirmed_device(staff(django_user_model, "boss", group="Approvers"))

    without = log_in(client, "boss")
    assert without.status_code == 200
    assert "Enter the 6-digit code from your authenticator app" in without.content.decode()
    wrong = log_in(client, "boss", token=wrong_code(device))
    assert wrong.status_code == 200 and "That code is not right" in wrong.content.decode()
    assert not logged_in(client)


def test_a_user_with_two_devices_chooses_one(client, django_user_model):
    boss = staff(django_user_model, "boss", superuser=True)
    confirmed_device(boss)
    phone = TOTPDevice.objects.create(user=boss, name="Spare phone", confirmed=True)

    choose = log_in(client, "boss", token=code(phone))
    assert choose.status_code == 200 and 'name="otp_device"' in choose.content.decode()
    answer = client.post(LOGIN, {"username": "boss", "password": PASSWORD, "otp_device": phone.persistent_id,
                                 "otp_token": code(phone), "next": INDEX}, REMOTE_ADDR="198.51.100.7")
    assert answer.status_code == 302 and logged_in(client)


@override_settings(GIFTDESK_REQUIRE_2FA=False)
def test_a_device_is_asked_for_even_when_not_required(client, django_user_model):
    device = confirmed_device(staff(django_user_model, "sender", group="Senders"))
    assert log_in(client, "sender").status_code == 200
    assert log_in(client, "sender", token=code(device)).status_code == 302


def test_wrong_codes_count_towards_the_lockout(client, django_user_model):
    device = confirmed_device(staff(django_user_model, "boss", superuser=True))
    for _ in range(LIMIT):
        device.throttle_reset()
        log_in(client, "boss", token=wrong_code(device))

    device.throttle_reset()
    assert log_in(client, "boss", token=code(device)).status_code == 429


def test_an_administrator_removes_a_lost_device_and_never_sees_its_secret(admin_client, django_user_model):
    device = confirmed_device(staff(django_user_model, "approver", group="Approvers"))

    change = admin_client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk]))
    assert change.status_code == 200 and device.key not in change.content.decode()
    admin_client.post(reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"})
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()


def test_two_factor_is_required_by_default_with_https_and_off_for_the_demo():
    script = "from django.conf import settings; print(settings.GIFTDESK_REQUIRE_2FA)"
    assert manage("shell", "-v", "0", "-c", script, env=PRODUCTION).stdout.strip() == "True"
    assert manage("shell", "-v", "0", "-c", script, env={"DEBUG": "true"}).stdout.strip() == "False"


# --- Headers and sessions (finding 12) -------------------------------------------------------

def test_admin_pages_carry_a_content_security_policy_without_inline_script(admin_client, client):
    for answer in (admin_client.get(INDEX), admin_client.get(reverse("admin:orders_batch_changelist")),
                   client.get(LOGIN)):
        policy = answer["Content-Security-Policy"]
        directives = {part.split()[0]: part.split()[1:] for part in policy.split("; ")}
        assert directives["default-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["object-src"] == ["'none'"]
        assert "'unsafe-inline'" not in directives["script-src"]
        assert "'unsafe-inline'" not in directives["style-src"]


def test_a_session_lasts_a_working_day_and_ends_with_the_browser(client, django_user_model, settings):
    assert settings.SESSION_COOKIE_AGE == 9 * 3600 and settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    staff(django_user_model, "sender")
    answer = log_in(client, "sender")

    cookie = answer.cookies[settings.SESSION_COOKIE_NAME]
    assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes
    session = Session.objects.get()
    assert abs((session.expire_date - timezone.now()) - timedelta(hours=9)) < timedelta(minutes=1)

    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))  # a day later
    assert client.get(INDEX).status_code == 302


def test_the_session_hours_come_from_the_environment():
    script = "from django.conf import settings; print(settings.SESSION_COOKIE_AGE)"
    answer = manage("shell", "-v", "0", "-c", script, env={"GIFTDESK_SESSION_HOURS": "2"})
    assert answer.stdout.strip() == "7200"


def test_cookies_are_secure_whenever_https_is_on():
    script = ("from django.conf import settings; "
              "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)")
    assert manage("shell", "-v", "0", "-c", script, env=PRODUCTION).stdout.strip() == "True True"
    assert manage("shell", "-v", "0", "-c", script, env={"DEBUG": "true"}).stdout.strip() == "False False"
