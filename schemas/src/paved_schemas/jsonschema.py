"""JSON Schema of every event type, and the committed history they must stay compatible with.

Layout under `schemas/jsonschema/`:

- `<type>.json`: the schema of `Envelope[<class>]` for the current code;
- `history/<type>/NNNN.json`: every schema ever committed for that type, numbered.

`plan()` compares the code with those files and says what to write and what is broken;
`python -m paved_schemas.generate [--check]` is the command line around it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paved_schemas.base import Contract
from paved_schemas.compat import Incompatibility, check_compatibility
from paved_schemas.envelope import Envelope, dataschema_uri
from paved_schemas.registry import CONTRACTS

__all__ = [
    "DEFAULT_OUT_DIR",
    "Incompatibility",
    "Plan",
    "apply",
    "check_compatibility",
    "envelope_schema",
    "example_data",
    "plan",
    "render",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[2] / "jsonschema"
"""`schemas/jsonschema` of the source tree (the package is installed editable)."""


def envelope_schema(contract: type[Contract]) -> dict[str, Any]:
    """The JSON Schema (validation mode) of `Envelope[contract]` as it is committed."""
    envelope_class: type[Envelope[Any]] = Envelope[contract]  # type: ignore[valid-type]
    schema = envelope_class.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = dataschema_uri(contract.TYPE)
    schema["title"] = contract.__name__
    summary = (inspect.getdoc(contract) or "").strip()
    schema["description"] = f"{summary} CloudEvents 1.0 envelope, type {contract.TYPE}."
    # The generic envelope accepts any registered type; this file is for one of them.
    schema["properties"]["type"]["const"] = contract.TYPE
    schema["properties"]["schemaversion"]["const"] = contract.SCHEMA_VERSION
    schema["properties"]["data"]["examples"] = [example_data(contract)]
    return schema


def example_data(contract: type[Contract]) -> dict[str, Any]:
    """A valid payload for `contract` built from the first example of every field (JSON form).

    Raises `ValueError` naming a field that has no example, or whose examples do not
    together make a valid payload, so the published documentation cannot lie.
    """
    values = {}
    for name, info in contract.model_fields.items():
        if not info.examples:
            raise ValueError(f"{contract.__name__}.{name} has no examples")
        values[name] = info.examples[0]
    try:
        return contract.model_validate(values).model_dump(mode="json")
    except ValidationError as exc:
        raise ValueError(
            f"the examples of {contract.__name__} are not a valid payload: {exc}"
        ) from exc


def render(schema: dict[str, Any]) -> str:
    """Deterministic text of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass
class Plan:
    """What generation would write, and why it must not (`problems`)."""

    writes: dict[Path, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _snapshots(history_dir: Path) -> list[Path]:
    return sorted(history_dir.glob("[0-9][0-9][0-9][0-9].json"))


def plan(out_dir: Path = DEFAULT_OUT_DIR, contracts: Iterable[type[Contract]] = CONTRACTS) -> Plan:
    """Compare the code's schemas with the files under `out_dir`; touches nothing."""
    result = Plan()
    known: set[str] = set()
    for contract in contracts:
        event_type = contract.TYPE
        known.add(event_type)
        schema = envelope_schema(contract)
        text = render(schema)
        current = out_dir / f"{event_type}.json"
        if not current.is_file() or current.read_text(encoding="utf-8") != text:
            result.writes[current] = text
        history = _snapshots(out_dir / "history" / event_type)
        for snapshot in history:
            old = json.loads(snapshot.read_text(encoding="utf-8"))
            for issue in check_compatibility(old, schema):
                result.problems.append(
                    f"{event_type}: breaks history/{event_type}/{snapshot.name} at {issue}"
                )
        if not history or history[-1].read_text(encoding="utf-8") != text:
            number = int(history[-1].stem) + 1 if history else 1
            result.writes[out_dir / "history" / event_type / f"{number:04d}.json"] = text
    for orphan in _committed_types(out_dir) - known:
        result.problems.append(
            f"{orphan}: has committed schemas but no registered class; a released type is "
            "never removed (auditors replay it): restore the class in paved_schemas.registry"
        )
    return result


def _committed_types(out_dir: Path) -> set[str]:
    types = {p.stem for p in out_dir.glob("*.json")}
    history = out_dir / "history"
    if history.is_dir():
        types |= {p.name for p in history.iterdir() if p.is_dir()}
    return types


def apply(result: Plan) -> None:
    """Write the planned files. Refuses a plan with problems."""
    if result.problems:
        raise ValueError("refusing to write schemas while there are compatibility problems")
    for path, text in sorted(result.writes.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
