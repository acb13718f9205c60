"""The promises under faults, at CI size (bench/faults.py runs the full 1,000 orders)."""

import pytest
from django.conf import settings

from emulators.fault_harness import run
from tests.fixtures.worker import worker_database_url

pytestmark = pytest.mark.worker


@pytest.mark.parametrize("workers", [1 if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") else 2])
def test_every_order_finishes_once_despite_faults_and_a_killed_worker(transactional_db, workers, tmp_path):
    result = run(database_url=worker_database_url(), orders_per_provider=30, workers=workers,
                 fault_rate=0.25, seed=20261121, kill_after_fraction=0.3, timeout=480, log_dir=tmp_path)
    print(result.summary())

    assert result.lost == [], result.summary()
    assert result.duplicates == 0
    assert result.cards_for_undelivered == []
    assert result.failed_without_reason == []
    assert result.workers_killed == 1
    assert result.rate_limit_refusals == 0  # Gifty's 120 requests/minute held across workers
    assert sum(result.faults.values()) >= 10, "the run must actually have been faulty"
