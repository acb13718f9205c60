"""The account rate limit: a sliding one-minute window in the database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from providers import ratelimit
from providers.clients.base import TransientError
from providers.models import ProviderAccount, RateLimitSlot


@pytest.fixture
def account(db):
    return ProviderAccount.objects.create(name="Limited", kind="gifty", rate_limit_per_minute=3)


def test_requests_within_the_limit_go_at_once_and_are_counted(account):
    for _ in range(3):
        ratelimit.acquire(account.pk, 3, max_wait=0)
    assert RateLimitSlot.objects.filter(account=account).count() == 3


def test_a_request_over_the_limit_is_rescheduled_with_the_wait(account):
    for _ in range(3):
        ratelimit.acquire(account.pk, 3, max_wait=0)
    with pytest.raises(TransientError) as error:
        ratelimit.acquire(account.pk, 3, max_wait=5)
    assert 55 < error.value.retry_after <= 61
    assert "3 requests per minute" in error.value.message


def test_a_request_waits_for_the_oldest_to_leave_the_window(account):
    now = timezone.now()
    RateLimitSlot.objects.bulk_create([
        RateLimitSlot(account=account, at=now - timedelta(seconds=59.7)),
        RateLimitSlot(account=account, at=now - timedelta(seconds=10)),
        RateLimitSlot(account=account, at=now - timedelta(seconds=5)),
    ])
    started = timezone.now()
    ratelimit.acquire(account.pk, 3, max_wait=5)
    waited = (timezone.now() - started).total_seconds()
    assert 0.1 < waited < 2
    assert RateLimitSlot.objects.filter(account=account).count() == 3  # the old one left the window


def test_other_accounts_do_not_count(account):
    other = ProviderAccount.objects.create(name="Other", kind="gifty")
    for _ in range(3):
        ratelimit.acquire(other.pk, 3, max_wait=0)
    ratelimit.acquire(account.pk, 3, max_wait=0)
    assert RateLimitSlot.objects.filter(account=account).count() == 1
