"""/health/ for load balancers: anonymous, never redirected or locked out, JSON on request, and
each of GiftDesk's own checks (upload directory, migrations, task queue) says what is wrong."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from health_check.exceptions import ServiceUnavailable

from giftdesk import health

pytestmark = pytest.mark.django_db

CHECKS = {"Database(alias='default')", "Cache(alias='default')", "Uploads()", "Migrations()", "TaskQueue()"}


@pytest.fixture
def worker_seen(settings):
    """The checks run in threads of their own, outside the test's transaction: the schedules
    they read are the migrated ones, so the limit decides whether a worker counts as seen."""
    settings.GIFTDESK_HEALTH_WORKER_SECONDS = 10 ** 9


def get_json(client, path="/health/", **headers):
    return client.get(path, HTTP_ACCEPT="application/json", **headers)


def test_health_answers_anonymously_in_json_with_every_check(client, worker_seen):
    answer = get_json(client)

    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {name: "OK" for name in CHECKS}
    assert "no-cache" in answer["Cache-Control"] and "Accept" in answer["Vary"]
    assert "sessionid" not in answer.cookies  # nothing stored for a probe


def test_health_web_leaves_the_task_queue_out(client, monkeypatch):
    def no_worker(self):
        raise ServiceUnavailable("No task-queue worker seen for 999 s")

    monkeypatch.setattr(health.TaskQueue, "check", no_worker)

    everything = get_json(client)
    assert everything.status_code == 500
    assert everything.json()["TaskQueue()"] == "Unavailable: No task-queue worker seen for 999 s"
    web = get_json(client, "/health/web/")
    assert web.status_code == 200 and set(web.json()) == CHECKS - {"TaskQueue()"}


def test_the_html_page_has_no_inline_style_and_keeps_the_content_security_policy(client, worker_seen):
    answer = client.get("/health/", HTTP_ACCEPT="text/html")

    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/html")
    page = answer.content.decode()
    assert "<style" not in page and "style=" not in page and "<script" not in page
    assert "GiftDesk status: OK" in page and "TaskQueue()" in page
    assert "style-src 'self'" in answer["Content-Security-Policy"]


@override_settings(GIFTDESK_REQUIRE_2FA=True)
def test_health_is_not_sent_to_the_two_factor_page_or_the_login(client, django_user_model, worker_seen):
    """A signed-in administrator without a device is sent to enrol everywhere in the admin, not here."""
    boss = django_user_model.objects.create_user("boss", password="pw-0123456789", is_staff=True, is_superuser=True)
    client.force_login(boss)
    assert client.get(reverse("admin:index")).status_code == 302  # the rule is on

    assert get_json(client).status_code == 200
    assert get_json(Client()).status_code == 200


def test_a_locked_out_address_still_gets_health(client, django_user_model, worker_seen):
    django_user_model.objects.create_user("sender", password="pw-0123456789", is_staff=True)
    login = reverse("admin:login")
    for n in range(6):
        client.post(login, {"username": "sender", "password": f"guess-{n}"}, REMOTE_ADDR="198.51.100.7")
    assert client.post(login, {"username": "sender", "password": "guess-x"},
                       REMOTE_ADDR="198.51.100.7").status_code == 429  # locked

    assert get_json(client, REMOTE_ADDR="198.51.100.7").status_code == 200


@override_settings(SECURE_SSL_REDIRECT=True)
def test_with_https_on_a_plain_http_probe_is_answered_not_redirected(client, worker_seen):
    assert client.get(reverse("admin:login")).status_code == 301  # everything else goes to https
    assert get_json(client).status_code == 200
    assert get_json(client, "/health/web/").status_code == 200


# --- The checks one by one (run here, in the test's transaction) ---------------------------

def overdue(seconds: float) -> None:
    Schedule.objects.exclude(repeats=0).update(next_run=timezone.now() - timedelta(seconds=seconds))


def test_the_task_queue_is_down_when_no_worker_ran_the_schedules_within_the_limit(settings):
    settings.GIFTDESK_HEALTH_WORKER_SECONDS = 120
    overdue(60)  # a worker runs due schedules about every 30 s: still seen
    health.TaskQueue().check()

    overdue(300)
    with pytest.raises(ServiceUnavailable, match=r"No task-queue worker seen for 30\d s: a schedule is overdue "
                                                 r"by more than 120 s \(is `manage.py run_worker` running\?\)"):
        health.TaskQueue().check()


def test_a_cluster_reporting_through_the_broker_counts_as_seen(settings, monkeypatch):
    settings.GIFTDESK_HEALTH_WORKER_SECONDS = 120
    overdue(300)

    class Reported:
        status = Conf.IDLE

    monkeypatch.setattr("django_q.status.Stat.get_all", lambda *args, **kwargs: [Reported()])
    health.TaskQueue().check()

    Reported.status = Conf.STOPPED  # its last report, on the way out
    with pytest.raises(ServiceUnavailable):
        health.TaskQueue().check()


def test_migrations_not_applied_are_named(monkeypatch):
    class Migration:
        def __init__(self, app_label, name):
            self.app_label, self.name = app_label, name

    class Executor:
        def __init__(self, connection):
            self.loader = type("Loader", (), {"graph": type("Graph", (), {"leaf_nodes": lambda self: []})()})()

        def migration_plan(self, targets):
            return [(Migration("orders", f"00{n}_new"), False) for n in range(40, 45)]

    monkeypatch.setattr(health, "MigrationExecutor", Executor)
    monkeypatch.setattr(health.Migrations, "_all_applied", False)

    with pytest.raises(ServiceUnavailable, match=r"Migrations not applied: orders.0040_new, orders.0041_new, "
                                                 r"orders.0042_new and 2 more \(run manage.py migrate\)"):
        health.Migrations().check()


def test_all_migrations_applied_is_remembered(monkeypatch):
    monkeypatch.setattr(health.Migrations, "_all_applied", False)
    health.Migrations().check()
    assert health.Migrations._all_applied

    monkeypatch.setattr(health, "MigrationExecutor", None)  # not read again
    health.Migrations().check()


def test_an_upload_directory_that_cannot_be_written_is_unavailable(settings, tmp_path):
    settings.GIFTDESK_UPLOAD_DIR = tmp_path / "uploads"
    health.Uploads().run()
    assert list((tmp_path / "uploads").iterdir()) == []  # the probe's file is gone

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.GIFTDESK_UPLOAD_DIR = blocker / "uploads"
    with pytest.raises(ServiceUnavailable, match="The upload directory: Not a directory"):
        health.Uploads().run()
