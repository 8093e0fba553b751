"""`python -m paved_validator`: run the validator worker until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from paved_shared.logging import configure_logging
from paved_shared.telemetry import setup_telemetry

from paved_validator.bootstrap import create_runtime
from paved_validator.settings import ValidatorSettings


def main() -> None:
    settings = ValidatorSettings()
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    setup_telemetry(settings.service_name, settings.otlp_endpoint)
    asyncio.run(create_runtime(settings).run_forever())


if __name__ == "__main__":
    main()
