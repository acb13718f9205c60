"""Static files through whitenoise: hashed, compressed and cached for ever once collectstatic has
run (and through gunicorn as the README runs it); plain names found in the apps' directories
before, so the tests, the benchmarks and the demo need no collectstatic."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from tests.project.test_worker_stops import free_port

ROOT = Path(__file__).resolve().parents[2]
LOGIN = reverse("admin:login")
HASHED_CSS = re.compile(r'/static/admin/css/base\.[0-9a-f]{12}\.css')
FOREVER = "max-age=315360000, public, immutable"

pytestmark = pytest.mark.django_db


def test_without_collectstatic_pages_name_the_plain_files_and_whitenoise_finds_them(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path / "never-collected", WHITENOISE_USE_FINDERS=True,
                           WHITENOISE_AUTOREFRESH=True):
        client = Client()
        page = client.get(LOGIN).content.decode()
        assert 'href="/static/admin/css/base.css"' in page and not HASHED_CSS.search(page)

        css = client.get("/static/admin/css/base.css")
        assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
        assert css["Access-Control-Allow-Origin"] == "*"  # whitenoise's answer, not Django's view
        ours = client.get("/static/giftdesk/admin.css")
        assert ours.status_code == 200


def test_after_collectstatic_pages_name_hashed_files_served_compressed_and_cached_for_ever(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path / "collected", WHITENOISE_USE_FINDERS=False,
                           WHITENOISE_AUTOREFRESH=False):
        call_command("collectstatic", interactive=False, verbosity=0)
        assert (tmp_path / "collected" / "staticfiles.json").is_file()
        client = Client()  # its whitenoise reads STATIC_ROOT now
        page = client.get(LOGIN)
        assert "style-src 'self'" in page["Content-Security-Policy"]  # the CSP is unchanged
        url = HASHED_CSS.search(page.content.decode()).group(0)

        css = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert css.status_code == 200 and css["Cache-Control"] == FOREVER
        assert css["Content-Encoding"] == "gzip" and "Accept-Encoding" in css["Vary"]
        plain = client.get("/static/admin/css/base.css")
        assert plain.status_code == 200 and plain["Cache-Control"] == "max-age=60, public"


def test_the_demo_settings_and_production_settings_pick_the_right_serving(tmp_path):
    """Read from the settings as each process computes them (DEBUG, whether STATIC_ROOT holds a manifest)."""
    script = ("from django.conf import settings; print(settings.GIFTDESK_STATIC_COLLECTED, "
              "settings.WHITENOISE_USE_FINDERS, settings.WHITENOISE_AUTOREFRESH)")

    def read(**env):
        result = subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", script], cwd=ROOT,
                                env={**os.environ, "DJANGO_SETTINGS_MODULE": "giftdesk.settings", **env},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    collected = tmp_path / "collected"
    collected.mkdir()
    (collected / "staticfiles.json").write_text('{"paths": {}, "version": "1.1", "hash": ""}')
    assert read(DEBUG="false", STATIC_ROOT=str(collected)) == ["True", "False", "False"]
    assert read(DEBUG="false", STATIC_ROOT=str(tmp_path / "empty")) == ["False", "True", "True"]
    assert read(DEBUG="true", STATIC_ROOT=str(collected)) == ["True", "True", "True"]


def test_gunicorn_serves_the_admin_hashed_static_files_and_health_as_the_readme_runs_it(tmp_path):
    port = free_port()
    env = {**{key: value for key, value in os.environ.items() if key not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}},
           "DJANGO_SETTINGS_MODULE": "giftdesk.settings", "DEBUG": "false",
           "SECRET_KEY": "a-production-secret-of-more-than-fifty-characters-0123456789abcdef",
           "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": f"sqlite:///{tmp_path / 'giftdesk.sqlite3'}",
           "STATIC_ROOT": str(tmp_path / "staticfiles"), "GIFTDESK_UPLOAD_DIR": str(tmp_path / "uploads"),
           # No worker ever runs here; with no grace the schedules that migrate created are overdue.
           "GIFTDESK_HEALTH_WORKER_SECONDS": "0"}
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(gunicorn), "giftdesk.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                   "--timeout", "600"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        page = _get_when_up(f"{base}/admin/login/", server, log)
        assert page.status_code == 200
        urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert urls and all(re.search(r"\.[0-9a-f]{12}\.(css|js|svg)$", url) for url in urls), urls
        for url in urls:
            answer = requests.get(base + url, headers={"Accept-Encoding": "gzip"}, timeout=10)
            assert answer.status_code == 200 and answer.headers["Cache-Control"] == FOREVER, url

        web = requests.get(f"{base}/health/web/", headers={"Accept": "application/json"}, timeout=10)
        assert web.status_code == 200 and set(web.json().values()) == {"OK"}, web.text
        # No worker runs here: the whole check says so, by name.
        everything = requests.get(f"{base}/health/", headers={"Accept": "application/json"}, timeout=10)
        assert everything.status_code == 500 and everything.json()["TaskQueue()"].startswith(
            "Unavailable: No task-queue worker seen"), everything.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _get_when_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 30) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
