"""`python -m paved_deployer.modelserver ...`: serve one model version over OIP v2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paved_schemas.events import ModelSignature
from pydantic import ValidationError

from paved_deployer.modelserver import http
from paved_deployer.modelserver.app import ModelLoadError, ModelServer, ServedModel, load_model
from paved_deployer.modelserver.loaders import SERVABLE


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, verify and load the model, then serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m paved_deployer.modelserver",
        description="Serve one model version over the Open Inference Protocol v2.",
    )
    parser.add_argument("--name", required=True, help="model name, as in the URL")
    parser.add_argument("--version", required=True, help="model version")
    parser.add_argument("--model-file", required=True, type=Path, help="the model artifact")
    parser.add_argument("--signature-file", required=True, type=Path, help="signature JSON")
    parser.add_argument(
        "--digest", required=True, help="approved sha256:<hex>; the server refuses any other file"
    )
    parser.add_argument(
        "--framework", default="sklearn", choices=sorted(SERVABLE), help="artifact framework"
    )
    parser.add_argument(
        "--genai", action="store_true", help="serve the OpenAI-compatible chat endpoint"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    listen = parser.add_mutually_exclusive_group(required=True)
    listen.add_argument("--port", type=int, help="TCP port to bind on --host")
    listen.add_argument(
        "--listen-fd",
        type=int,
        help="an inherited, listening TCP socket to serve on (a sandbox with no network "
        "of its own still accepts on it)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=http.DEFAULT_MAX_BODY,
        help="request body cap; larger requests are answered 413",
    )
    args = parser.parse_args(argv)
    try:
        sock = None if args.listen_fd is None else http.inherited_socket(args.listen_fd)
    except (OSError, ValueError) as exc:
        print(f"refusing to start: bad --listen-fd {args.listen_fd}: {exc}", flush=True)
        return 2
    try:
        signature = ModelSignature.model_validate_json(args.signature_file.read_text())
    except (OSError, ValidationError) as exc:
        print(f"refusing to start: bad signature file {args.signature_file}: {exc}", flush=True)
        return 2
    try:
        model = load_model(
            args.model_file,
            expected_digest=args.digest,
            signature=signature,
            framework=args.framework,
        )
    except (ModelLoadError, OSError) as exc:
        print(f"refusing to start: {exc}", flush=True)
        return 2
    except Exception as exc:  # unpickling runs arbitrary constructors; report, don't trace
        print(f"refusing to start: cannot load {args.model_file}: {exc!r}", flush=True)
        return 2
    server = ModelServer(ServedModel(args.name, args.version, signature, model, args.genai))
    where = args.port if sock is None else sock.getsockname()[1]
    http.run(
        server.handle,
        args.host,
        args.port or 0,
        on_start=lambda: print(f"serving {args.name} v{args.version} on {where}", flush=True),
        sock=sock,
        limits=http.Limits(max_body=args.max_body_bytes),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
