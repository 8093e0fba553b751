"""`python -m paved_deployer.modelserver ...`: serve one model version over OIP v2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from paved_schemas.events import ModelSignature
from pydantic import ValidationError

from paved_deployer.modelserver.app import ModelLoadError, ServedModel, create_app, load_model


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, verify and load the model, then serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m paved_deployer.modelserver",
        description="Serve one scikit-learn model version over the Open Inference Protocol v2.",
    )
    parser.add_argument("--name", required=True, help="model name, as in the URL")
    parser.add_argument("--version", required=True, help="model version")
    parser.add_argument("--model-file", required=True, type=Path, help="pickled model")
    parser.add_argument("--signature-file", required=True, type=Path, help="signature JSON")
    parser.add_argument(
        "--digest", required=True, help="approved sha256:<hex>; the server refuses any other file"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", required=True, type=int, help="TCP port")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    try:
        signature = ModelSignature.model_validate_json(args.signature_file.read_text())
    except (OSError, ValidationError) as exc:
        print(f"refusing to start: bad signature file {args.signature_file}: {exc}", flush=True)
        return 2
    try:
        model = load_model(args.model_file, expected_digest=args.digest, signature=signature)
    except (ModelLoadError, OSError) as exc:
        print(f"refusing to start: {exc}", flush=True)
        return 2
    except Exception as exc:  # unpickling runs arbitrary constructors; report, don't trace
        print(f"refusing to start: cannot load {args.model_file}: {exc!r}", flush=True)
        return 2
    app = create_app(ServedModel(args.name, args.version, signature, model))
    # One worker: with several, uvicorn's accepted sockets lose TCP_NODELAY (uvicorn #3149).
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
