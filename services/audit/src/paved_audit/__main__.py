"""``python -m paved_audit``: run the audit worker until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from paved_shared.logging import configure_logging
from paved_shared.telemetry import setup_telemetry

from paved_audit.bootstrap import create_runtime
from paved_audit.settings import AuditSettings


def main() -> None:
    """Read settings from the environment, then consume, seal and publish until stopped."""
    settings = AuditSettings()
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    provider = setup_telemetry(settings.service_name, settings.otlp_endpoint)
    runtime = create_runtime(settings, tracer_provider=provider)
    asyncio.run(runtime.run_forever())


if __name__ == "__main__":
    main()
