pytest_plugins = ["tests.fixtures.emulators", "tests.fixtures.data", "tests.fixtures.worker"]
