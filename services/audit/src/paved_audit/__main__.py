"""``python -m paved_audit``: the audit process (sealing consumer, checkpoint signer and
read-only audit API) until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn
from paved_shared.logging import configure_logging
from paved_shared.telemetry import setup_telemetry

from paved_audit.bootstrap import create_app
from paved_audit.settings import AuditSettings


def main() -> None:
    """Read settings from the environment; uvicorn runs the lifespan (runtime start/stop)."""
    settings = AuditSettings()
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    provider = setup_telemetry(settings.service_name, settings.otlp_endpoint)
    app = create_app(settings, tracer_provider=provider)
    uvicorn.run(
        app,
        host=settings.audit_http_host,
        port=settings.audit_http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
