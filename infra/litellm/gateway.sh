#!/usr/bin/env bash
# Run the shared GenAI gateway (LiteLLM proxy supervised by Paved) for a `make up` platform.
#   infra/litellm/gateway.sh [PORT]     (default $PAVED_GATEWAY_PORT or 4000)
# Deployers write routes into $PAVED_DEPLOYER_GATEWAY_DIR (default .run/gateway); start
# them with that variable set so GenAI deployments get a route.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORT=${1:-${PAVED_GATEWAY_PORT:-4000}}
DIR=${PAVED_DEPLOYER_GATEWAY_DIR:-${PAVED_RUN_DIR:-$ROOT/.run}/gateway}
exec uv run --frozen python -m paved_deployer.gateway --dir "$DIR" --host 127.0.0.1 \
  --port "$PORT" --template "$ROOT/infra/litellm/config.template.yaml"
