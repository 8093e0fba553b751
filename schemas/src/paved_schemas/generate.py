"""Write (or with `--check`, verify) the committed JSON Schemas of every event type.

    uv run python -m paved_schemas.generate           # regenerate, append history snapshots
    uv run python -m paved_schemas.generate --check   # CI: fail if anything is stale

Exit status 0: up to date (or written). 1: stale files in check mode, or a change that is
not backward compatible with an earlier snapshot (then nothing is written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from paved_schemas.jsonschema import DEFAULT_OUT_DIR, apply, plan


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m paved_schemas.generate", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if any file is stale"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT_DIR, help="schema folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out

    result = plan(out_dir)
    if result.problems:
        print("Incompatible schema change; nothing written:", file=sys.stderr)
        for problem in result.problems:
            print(f"  {problem}", file=sys.stderr)
        print(
            "Make the change additive (new optional field, new enum value) or publish a new "
            "type with the next .vN suffix; see docs/schemas.md.",
            file=sys.stderr,
        )
        return 1
    if args.check:
        if result.writes:
            print("JSON Schemas are stale or missing:", file=sys.stderr)
            for path in sorted(result.writes):
                print(f"  {_shown(path, out_dir)}", file=sys.stderr)
            print("Run: uv run python -m paved_schemas.generate", file=sys.stderr)
            return 1
        print(f"JSON Schemas up to date in {out_dir}")
        return 0
    apply(result)
    for path in sorted(result.writes):
        print(f"wrote {_shown(path, out_dir)}")
    if not result.writes:
        print(f"JSON Schemas already up to date in {out_dir}")
    return 0


def _shown(path: Path, out_dir: Path) -> str:
    return str(path.relative_to(out_dir))


if __name__ == "__main__":
    sys.exit(main())
