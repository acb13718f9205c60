pytest_plugins = ["tests.fixtures.emulators", "tests.fixtures.data"]
