"""JSON Schema generation: committed files are current, history only grows compatibly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from paved_schemas import EVENT_TYPES, Event
from paved_schemas.compat import check_compatibility
from paved_schemas.generate import main
from paved_schemas.jsonschema import DEFAULT_OUT_DIR, apply, envelope_schema, plan, render
from pydantic import Field

pytestmark = pytest.mark.unit


def test_committed_schemas_are_not_stale() -> None:
    result = plan(DEFAULT_OUT_DIR)

    assert result.problems == []
    stale = sorted(str(p.relative_to(DEFAULT_OUT_DIR)) for p in result.writes)
    assert stale == [], "run: uv run python -m paved_schemas.generate"


def test_check_mode_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_current_schemas_are_compatible_with_every_snapshot() -> None:
    history = DEFAULT_OUT_DIR / "history"
    checked = 0
    for event_type, contract in EVENT_TYPES.items():
        snapshots = sorted((history / event_type).glob("*.json"))
        assert snapshots, f"{event_type} has no history snapshot"
        current = envelope_schema(contract)
        for snapshot in snapshots:
            old = json.loads(snapshot.read_text(encoding="utf-8"))
            assert check_compatibility(old, current) == [], snapshot
            checked += 1
    assert checked >= len(EVENT_TYPES)


def test_rendering_is_deterministic_and_described() -> None:
    contract = EVENT_TYPES["dev.paved.model.version.registered.v1"]
    text = render(envelope_schema(contract))
    schema = json.loads(text)

    assert text == render(envelope_schema(contract))
    assert text.endswith("}\n")
    assert schema["$id"] == "https://paved.dev/schemas/dev.paved.model.version.registered.v1.json"
    assert schema["title"] == "ModelVersionRegistered"
    assert schema["properties"]["type"]["const"] == contract.TYPE
    assert list(schema) == sorted(schema)


class Widget(Event):
    """A test event."""

    TYPE: ClassVar[str] = "dev.paved.test.widget.v1"
    TOPIC: ClassVar[str] = "paved.test.v1"

    name: str = Field(description="Name.", examples=["w"])

    def key(self) -> str:
        """The name."""
        return self.name


class WidgetWithColor(Widget):
    """A test event with an optional colour."""

    color: str | None = Field(default=None, description="Colour.", examples=["red"])


class WidgetWithSize(Widget):
    """A test event with a required size: a breaking change."""

    size: int = Field(description="Size.", examples=[1])


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.json"))}


def test_first_generation_writes_schema_and_snapshot(tmp_path: Path) -> None:
    apply(plan(tmp_path, [Widget]))

    assert sorted(_files(tmp_path)) == [
        "dev.paved.test.widget.v1.json",
        "history/dev.paved.test.widget.v1/0001.json",
    ]
    assert plan(tmp_path, [Widget]).writes == {}


def test_additive_change_appends_a_snapshot(tmp_path: Path) -> None:
    apply(plan(tmp_path, [Widget]))
    apply(plan(tmp_path, [WidgetWithColor]))

    files = _files(tmp_path)
    assert "history/dev.paved.test.widget.v1/0002.json" in files
    assert (
        files["history/dev.paved.test.widget.v1/0002.json"]
        == files["dev.paved.test.widget.v1.json"]
    )
    assert plan(tmp_path, [WidgetWithColor]).writes == {}


def test_breaking_change_against_any_snapshot_writes_nothing(tmp_path: Path) -> None:
    apply(plan(tmp_path, [Widget]))
    apply(plan(tmp_path, [WidgetWithColor]))
    before = _files(tmp_path)

    class WidgetWithoutColor(Widget):
        """Drops nothing from 0001 but removes 'color' from 0002: transitive check."""

    broken = plan(tmp_path, [WidgetWithoutColor])

    assert broken.problems == [
        "dev.paved.test.widget.v1: breaks history/dev.paved.test.widget.v1/0002.json "
        "at $.data.color: property was removed"
    ]
    with pytest.raises(ValueError, match="refusing to write"):
        apply(broken)
    assert _files(tmp_path) == before


def test_new_required_field_is_refused(tmp_path: Path) -> None:
    apply(plan(tmp_path, [Widget]))

    problems = plan(tmp_path, [WidgetWithSize]).problems

    assert problems == [
        "dev.paved.test.widget.v1: breaks history/dev.paved.test.widget.v1/0001.json "
        "at $.data.size: new property is required"
    ]


def test_removed_type_is_refused(tmp_path: Path) -> None:
    apply(plan(tmp_path, [Widget]))

    problems = plan(tmp_path, []).problems

    assert len(problems) == 1
    assert problems[0].startswith("dev.paved.test.widget.v1: has committed schemas but no")


def test_cli_check_mode_fails_on_missing_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "stale or missing" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_generates_then_checks_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    # A fresh generation writes the committed current schemas, each with one snapshot;
    # the committed history may hold older snapshots too, and its newest is the current.
    fresh, committed = _files(tmp_path), _files(DEFAULT_OUT_DIR)
    current = {k: v for k, v in fresh.items() if not k.startswith("history/")}
    assert current == {k: v for k, v in committed.items() if not k.startswith("history/")}
    for name, text in current.items():
        snapshots = sorted(k for k in committed if k.startswith(f"history/{name[:-5]}/"))
        assert committed[snapshots[-1]] == text, name
    capsys.readouterr()


def test_cli_reports_incompatibility_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    snapshot = tmp_path / "history/dev.paved.model.version.retired.v1/0001.json"
    old = json.loads(snapshot.read_text())
    old["$defs"]["ModelVersionRetired"]["properties"]["gone"] = {"type": "string"}
    snapshot.write_text(render(old))
    before = _files(tmp_path)

    assert main(["--out", str(tmp_path)]) == 1
    assert main(["--check", "--out", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "dev.paved.model.version.retired.v1: breaks history/" in err
    assert "0001.json at $.data.gone: property was removed" in err
    assert _files(tmp_path) == before


def test_stale_current_file_is_reported_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    (tmp_path / "dev.paved.approval.expired.v1.json").write_text("{}\n")

    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "dev.paved.approval.expired.v1.json" in capsys.readouterr().err
