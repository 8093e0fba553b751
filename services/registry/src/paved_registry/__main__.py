"""``python -m paved_registry``: run the registry (HTTP API + consumers + outbox relay).

``python -m paved_registry asyncapi`` prints the AsyncAPI document instead.
"""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn
from paved_shared.logging import configure_logging
from paved_shared.telemetry import setup_telemetry

from paved_registry.bootstrap import create_app, create_runtime
from paved_registry.settings import RegistrySettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paved_registry", description="Run the Paved registry."
    )
    parser.add_argument(
        "command", nargs="?", choices=("serve", "asyncapi"), default="serve",
        help="serve (default): run the process; asyncapi: print its AsyncAPI document",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    if args.command == "asyncapi":
        json.dump(create_runtime(settings).asyncapi(), sys.stdout, indent=2)
        print()
        return 0
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    provider = setup_telemetry(settings.service_name, settings.otlp_endpoint)
    app = create_app(settings, tracer_provider=provider)
    # One worker: the runtime (consumers, relay) lives in this process.
    uvicorn.run(
        app,
        host=settings.registry_http_host,
        port=settings.registry_http_port,
        workers=1,
        log_config=None,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
