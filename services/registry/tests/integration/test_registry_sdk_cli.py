"""The typed SDK (async and sync) and the catalog CLI against a registry on a real port."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from paved_cli.main import app as cli
from paved_cli.sdk import AsyncPavedClient, PavedClient, PavedError
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def _clients(url: str) -> tuple[AsyncPavedClient, PavedClient]:
    who = {"user": "alice", "user_name": "Alice Scientist"}
    return AsyncPavedClient(url, url, **who), PavedClient(url, url, **who)


async def test_sdk_async_and_sync_discover_edit_and_alias(
    live_registry: Any, kit: Any, tmp_path: Path
) -> None:
    aclient, client = _clients(live_registry.url)
    name, team = kit.model_name(), kit.model_name()
    async with aclient:
        await aclient.create_model(name, owner_team=team, description="Triage of radiology scans.")
        for seed in ("a", "b", "c"):
            await aclient.register_version(name, kit.version_body(seed))
        model = await aclient.get_model(name)
        assert (model["latest_version"], model["revision"]) == (3, 1)

        page = await aclient.search_versions(owner_team=team, limit=2, sort="name")
        assert [v["version"] for v in page["items"]] == [1, 2]
        assert page["next_cursor"]
        every = [v async for v in aclient.iter_versions(owner_team=team, limit=2, sort="name")]
        assert [v["version"] for v in every] == [1, 2, 3]
        found = await aclient.search_versions(q="radiology", owner_team=team)
        assert len(found["items"]) == 3

        edited = await aclient.update_model(
            name, revision=model["revision"], tags={"tier": "gold"}, reason="promote"
        )
        assert edited["revision"] == 2
        assert edited["tags"] == {"tier": "gold"}
        with pytest.raises(PavedError) as stale:
            await aclient.update_model(name, revision=1, description="late")
        assert stale.value.status == 412

        version = await aclient.get_version(name, 1)
        changed = await aclient.update_version(
            name, 1, revision=version["revision"], description="baseline"
        )
        assert changed["description"] == "baseline"
        alias = await aclient.set_alias(name, "candidate", 2)
        assert (alias["version"], alias["protected"]) == (2, False)
        with pytest.raises(PavedError) as protected:
            await aclient.set_alias(name, "champion", 2, reason="best")
        assert protected.value.status == 409

    with client:
        # The sync client has the same calls.
        assert [a["alias"] for a in client.list_aliases(name)] == ["candidate"]
        assert client.get_alias(name, "candidate")["version"] == 2
        assert [m["name"] for m in client.list_models(owner_team=team)] == [name]
        assert [v["version"] for v in client.iter_versions(name=name, limit=1)] == [3, 2, 1]
        actions = [c["action"] for c in client.list_changes(name)]
        assert actions == ["model_created", "model_updated", "version_updated", "alias_set"]
        client.remove_alias(name, "candidate")
        with pytest.raises(PavedError) as illegal:
            client.transition(name, 1, "deprecated", "old")
        assert illegal.value.status == 409
        assert client.transition(name, 1, "retired", "never used")["state"] == "retired"


async def test_cli_tables_for_search_models_aliases_and_history(
    live_registry: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, team = kit.model_name(), kit.model_name()
    _, client = _clients(live_registry.url)
    with client:
        client.create_model(name, owner_team=team, description="Forecasts hospital bed demand.")
        client.register_version(name, kit.version_body("cli"))
    monkeypatch.setenv("PAVED_REGISTRY_URL", live_registry.url)
    monkeypatch.setenv("PAVED_USER", "alice")
    monkeypatch.setenv("PAVED_USER_NAME", "Alice Scientist")
    runner = CliRunner()

    def paved(*args: str) -> str:
        result = runner.invoke(cli, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    out = await asyncio.to_thread(paved, "search", "hospital beds", "--team", team)
    assert name in out
    assert "validating" in out
    assert team in out
    out = await asyncio.to_thread(paved, "models", "list", "--team", team)
    assert name in out
    assert "v1" in out
    await asyncio.to_thread(
        paved, "models", "edit", name, "--tag", "tier=gold", "--reason", "promote"
    )
    await asyncio.to_thread(paved, "alias", "set", name, "candidate", "1")
    out = await asyncio.to_thread(paved, "models", "show", name)
    assert "candidate" in out
    assert "tier=gold" in out
    out = await asyncio.to_thread(paved, "models", "history", name)
    assert "tags.tier: ∅ → gold" in out
    assert "promote" in out
    refused = await asyncio.to_thread(
        runner.invoke, cli, ["alias", "set", name, "champion", "1", "--reason", "x"]
    )
    assert refused.exit_code == 1
    assert "protected" in refused.output
