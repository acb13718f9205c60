from pathlib import Path

import pytest

# Every module in tests/fixtures/ is a fixture plugin (emulators, data, worker processes).
pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if path.stem != "__init__"
)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, plus a copy of the migrated roles (tests/fixtures/roles.py), taken
    before any live-server test flushes them away."""
    from tests.fixtures.roles import roles_remember

    with django_db_blocker.unblock():
        roles_remember()
