"""The worker and `scripts/run` stop within seconds on SIGTERM or Ctrl-C (issue 8, finding 13).

django-q2's `qcluster` hung for ever in "stopping" when the signal reached its whole process
group (measured: > 40 s until SIGKILL); `manage.py run_worker` explains why and does not.
Each test starts the real processes in their own process group on a file database.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN_SECONDS = 5

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc"),
]


def alive_in_group(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for a reaper do not count)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # Gone meanwhile.
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            pids.append(int(entry.name))
    return pids


def environment(database: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "giftdesk.settings",
            "DATABASE_URL": f"sqlite:///{database}", "GIFTDESK_WORKERS": "2", **extra}


class Group:
    """A command started in its own session, so it and everything it starts share one group."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, *, processes: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output() and len(alive_in_group(self.pgid)) >= processes:
                return
            assert self.process.poll() is None, self.output()
            time.sleep(0.2)
        raise AssertionError(f"never saw {text!r}:\n{self.output()}")

    def seconds_until_gone(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < STOP_WITHIN_SECONDS * 3:
            if self.process.poll() is not None and not alive_in_group(self.pgid):
                break
            time.sleep(0.05)
        return time.monotonic() - started

    def kill(self) -> None:
        if alive_in_group(self.pgid):
            os.killpg(self.pgid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("worker-stops") / "giftdesk.sqlite3"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env=environment(path), check=True, timeout=300)
    return path


@pytest.fixture
def run_worker(database, tmp_path):
    group = Group([sys.executable, "manage.py", "run_worker"], environment(database), tmp_path / "worker.log")
    # The cluster itself, its sentinel, 2 workers, the monitor and the pusher.
    group.wait_for("running.", processes=6)
    yield group
    group.kill()


def test_sigterm_to_the_workers_process_group_ends_every_process_within_seconds(run_worker):
    os.killpg(run_worker.pgid, signal.SIGTERM)

    assert run_worker.seconds_until_gone() < STOP_WITHIN_SECONDS, run_worker.output()
    assert run_worker.process.returncode == 0


def test_ctrl_c_stops_the_worker_gracefully_within_seconds(run_worker):
    os.killpg(run_worker.pgid, signal.SIGINT)

    assert run_worker.seconds_until_gone() < STOP_WITHIN_SECONDS, run_worker.output()
    assert "has stopped" in run_worker.output() and run_worker.process.returncode == 0


def test_sigterm_to_the_worker_alone_stops_it_gracefully_even_when_repeated(run_worker):
    # What systemd sends with KillMode=mixed, and scripts/run's stop() after a Ctrl-C.
    os.kill(run_worker.pgid, signal.SIGTERM)
    time.sleep(0.1)
    os.kill(run_worker.pgid, signal.SIGTERM)

    assert run_worker.seconds_until_gone() < STOP_WITHIN_SECONDS, run_worker.output()
    assert "has stopped" in run_worker.output() and run_worker.process.returncode == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def requirements_installed() -> bool:
    """What scripts/_env.sh checks before it reinstalls the requirements (too slow for a test)."""
    marker = ROOT / ".venv" / ".requirements.sha256"
    wanted = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    return marker.exists() and marker.read_text().strip() == wanted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_scripts_run_stops_the_web_server_and_the_worker_within_seconds(tmp_path, signum):
    if not requirements_installed():
        pytest.skip("scripts/run would reinstall the requirements first")
    env = environment(tmp_path / "run.sqlite3", PORT=str(free_port()), PYTHON=sys.executable)
    env.pop("DJANGO_SETTINGS_MODULE")
    group = Group(["bash", "scripts/run"], env, tmp_path / "run.log")
    try:
        # bash, the web server, and the worker's 6 processes.
        group.wait_for("running.", processes=8, timeout=180)

        os.killpg(group.pgid, signum)

        assert group.seconds_until_gone() < STOP_WITHIN_SECONDS, group.output()
    finally:
        group.kill()
