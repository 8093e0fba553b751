"""`python -m paved_deployer`: run the deployer of `PAVED_DEPLOYER_TARGET` (default local).

`python -m paved_deployer stop-servers` stops every local model server under
`PAVED_DEPLOYER_RUN_DIR` (for `make down`; the deployer itself leaves them serving).
"""

from __future__ import annotations

import asyncio
import sys

from paved_shared.logging import configure_logging
from paved_shared.telemetry import setup_telemetry

from paved_deployer.adapters.local import stop_servers_under
from paved_deployer.bootstrap import create_deployer
from paved_deployer.settings import DeployerSettings


def main(argv: list[str] | None = None) -> int:
    """Read settings from the environment and run until SIGTERM/SIGINT."""
    args = sys.argv[1:] if argv is None else argv
    settings = DeployerSettings()
    if args == ["stop-servers"]:
        stopped = stop_servers_under(settings.deployer_run_dir.resolve())
        print(f"stopped {len(stopped)} model server(s) under {settings.deployer_run_dir}")
        return 0
    if args:
        print(f"unknown arguments {args}; use no arguments, or 'stop-servers'", file=sys.stderr)
        return 2
    try:
        deployer = create_deployer(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.service, settings.log_level, json=settings.log_json)
    setup_telemetry(settings.service, settings.otlp_endpoint)
    asyncio.run(deployer.run_forever())
    return 0


if __name__ == "__main__":
    sys.exit(main())
