"""`python -m paved_deployer.fetch`: the init container of a Kubernetes model-server pod.

Copies the artifact from S3/GCS into the pod's model volume, refuses it unless its
sha256 is the approved digest, and writes the signature next to it. Cloud credentials
come from the pod's service account (IRSA on EKS, Workload Identity on GKE).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from paved_shared.artifacts import (
    ArtifactError,
    ArtifactStoreConfig,
    ArtifactStoreSettings,
    sha256_file,
    store_for,
)


async def fetch(
    uri: str,
    digest: str,
    dest: Path,
    signature_json: str,
    config: ArtifactStoreConfig | None = None,
) -> Path:
    """Fetch and verify; return the local file (`config` default: `PAVED_ARTIFACT_*`)."""
    config = config or ArtifactStoreSettings().artifact_store_config()
    path = await store_for(uri, config=config).fetch(uri, dest)
    found = await asyncio.to_thread(sha256_file, path)
    if found != digest:
        path.unlink(missing_ok=True)
        raise ArtifactError(f"artifact {uri} has digest {found}, not the approved {digest}")
    await asyncio.to_thread((dest / "signature.json").write_text, signature_json)
    return path


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and fetch; exit 2 with the reason on any refusal."""
    parser = argparse.ArgumentParser(prog="python -m paved_deployer.fetch")
    parser.add_argument("--uri", required=True)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--signature-json", required=True)
    args = parser.parse_args(argv)
    try:
        path = asyncio.run(fetch(args.uri, args.digest, args.dest, args.signature_json))
    except (ArtifactError, OSError) as exc:
        print(f"refusing to serve: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"fetched {args.uri} -> {path} ({args.digest})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
