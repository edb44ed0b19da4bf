"""Root conftest: every test runs under the strict schema plugin (telemetry findings fail the test)."""

pytest_plugins = ["knhk_otel.validate.pytest_plugin", "pytester"]
