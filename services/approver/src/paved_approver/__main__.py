"""``python -m paved_approver``: the approver process (HTTP API + Kafka consumers)."""

from __future__ import annotations

import uvicorn
from paved_shared.logging import configure_logging
from paved_shared.telemetry import setup_telemetry

from paved_approver.bootstrap import create_app
from paved_approver.settings import ApproverSettings


def main() -> None:
    """Run until SIGTERM/SIGINT; uvicorn then runs the lifespan's shutdown (runtime.stop)."""
    settings = ApproverSettings()
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    provider = setup_telemetry(settings.service_name, settings.otlp_endpoint)
    app = create_app(settings, tracer_provider=provider)
    uvicorn.run(
        app,
        host=settings.approver_http_host,
        port=settings.approver_http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
