"""The catalog API people use daily: discovery, edits with ETags, aliases, lifecycle requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from paved_schemas import topics
from paved_schemas.events import DeploymentStatus

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _card(**overrides: Any) -> dict[str, Any]:
    card = {
        "description": "Predicts churn of subscribers.",
        "intended_use": "Retention offers only.",
        "limitations": "EU customers only.",
        "risk_tier": "low",
        "data_classification": "internal",
        "license": "Apache-2.0",
    }
    card.update(overrides)
    return card


async def _approve(registry: Any, kit: Any, name: str, version: int) -> str:
    digest: str = (await registry.version(name, version))["artifact_digest"]
    await registry.publish(
        kit.validated(name, version, digest),
        kit.approval_requested(name, version, digest),
        kit.approval_granted(name, version, digest),
    )
    await registry.wait_state(name, version, "approved")
    return digest


async def test_discovery_filters_full_text_sorts_and_cursor_pages(registry: Any, kit: Any) -> None:
    team = kit.model_name()  # unique team name isolates this test's rows
    sepsis, churn = kit.model_name(), kit.model_name()
    await registry.create_model(sepsis, owner_team=team, description="Early warning in ICUs.")
    await registry.create_model(churn, owner_team=team, description="Subscriber retention.")
    card = _card(description="Detects sepsis from vital signs.", risk_tier="high")
    await registry.register(sepsis, "s1", model_card=card, framework="onnx")
    await registry.register(sepsis, "s2", model_card=card, framework="sklearn",
                            tags={"stage": "prod"})  # fmt: skip
    for i in range(5):
        await registry.register(churn, f"c{i}", model_card=_card(), tags={"batch": str(i % 2)})

    async def find(**params: Any) -> dict[str, Any]:
        response = await registry.client.get("/api/v1/versions", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def keys(page: dict[str, Any]) -> list[tuple[str, int]]:
        return [(i["model_name"], i["version"]) for i in page["items"]]

    mine = await find(owner_team=team, limit=100)
    assert len(mine["items"]) == 7
    assert mine["next_cursor"] is None
    assert {i["owner_team"] for i in mine["items"]} == {team}
    # Full text over model cards (stemmed: "sign" matches "signs") and model descriptions.
    assert set(keys(await find(q="vital sign", owner_team=team))) == {(sepsis, 1), (sepsis, 2)}
    assert set(keys(await find(q="ICUs", owner_team=team))) == {(sepsis, 1), (sepsis, 2)}
    assert keys(await find(q="retention -sepsis", owner_team=team, sort="name")) == [
        (churn, v) for v in range(1, 6)
    ]
    assert keys(await find(owner_team=team, risk_tier="high", framework="sklearn")) == [(sepsis, 2)]
    assert keys(await find(owner_team=team, tag="stage:prod")) == [(sepsis, 2)]
    assert len((await find(owner_team=team, tag="batch"))["items"]) == 5
    assert len((await find(owner_team=team, tag="batch:1"))["items"]) == 2
    assert len((await find(owner_team=team, state="validating"))["items"]) == 7
    assert (await find(owner_team=team, state="approved"))["items"] == []
    assert keys(await find(name=sepsis, sort="-name")) == [(sepsis, 2), (sepsis, 1)]
    ranked = await find(q="sepsis", owner_team=team, sort="relevance")
    assert {k[0] for k in keys(ranked)} == {sepsis}

    # Cursor pages walk every row once, in order, for each sort.
    for sort in ("-registered_at", "registered_at", "name", "-name", "-updated_at"):
        seen: list[tuple[str, int]] = []
        cursor = None
        while True:
            page = await find(owner_team=team, sort=sort, limit=3,
                              **({"cursor": cursor} if cursor else {}))  # fmt: skip
            seen += keys(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(keys(mine)), sort
        assert len(seen) == 7, sort
    by_name = [(sepsis, 1), (sepsis, 2)] + [(churn, v) for v in range(1, 6)]
    assert keys(await find(owner_team=team, sort="name", limit=10)) == sorted(by_name)

    # Models: filters and the Link header for the next page (the body stays an array).
    models = await registry.client.get("/api/v1/models", params={"owner_team": team, "limit": 1})
    assert models.status_code == 200
    assert len(models.json()) == 1
    assert 'rel="next"' in models.headers["Link"]
    nxt = await registry.client.get(models.headers["Link"].split(";")[0].strip("<>"))
    assert [m["name"] for m in models.json() + nxt.json()] == sorted([sepsis, churn])
    assert "Link" not in nxt.headers
    found = await registry.client.get("/api/v1/models", params={"q": "warning", "owner_team": team})
    assert [m["name"] for m in found.json()] == [sepsis]


async def test_bad_discovery_queries_are_422_naming_parameter_and_value(registry: Any) -> None:
    cases = [
        ({"sort": "size"}, "sort", "size"),
        ({"cursor": "not-a-cursor"}, "cursor", "not-a-cursor"),
        ({"sort": "relevance"}, "sort", "relevance"),
        ({"state": "shipped"}, "query.state.0", "shipped"),
        ({"tag": ":x"}, "tag", ":x"),
        ({"limit": "0"}, "query.limit", "0"),
    ]
    for params, field, value in cases:
        response = await registry.client.get("/api/v1/versions", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["errors"][0]["field"] == field
        assert str(problem["errors"][0]["value"]) == value
    page = await registry.client.get("/api/v1/versions", params={"sort": "name", "limit": 1})
    cursor = page.json()["next_cursor"]
    other = await registry.client.get("/api/v1/versions", params={"cursor": cursor})
    assert other.status_code == 422
    assert "issued for sort 'name'" in other.json()["detail"]


async def test_edits_need_the_current_etag_and_are_logged_with_old_and_new_values(
    registry: Any, kit: Any
) -> None:
    name = kit.model_name()
    await registry.create_model(name, tags={"domain": "growth"})
    url = f"/api/v1/models/{name}"
    read = await registry.client.get(url)
    etag = read.headers["ETag"]
    assert etag == '"1"'

    body = {"owner_team": "growth", "tags": {"domain": None, "tier": "gold"}, "reason": "reorg"}
    # Moving a model to another team is an admin's change.
    missing = await registry.client.patch(url, json=body, headers=kit.ADMIN)
    assert missing.status_code == 428
    assert "If-Match" in missing.json()["detail"]

    # Two editors read the same ETag; the first write wins, the second is refused.
    first, second = await asyncio.gather(
        registry.client.patch(url, json=body, headers={**kit.ADMIN, "If-Match": etag}),
        registry.client.patch(
            url, json={"description": "mine"}, headers={**kit.CAROL, "If-Match": etag}
        ),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 412], (first.text, second.text)
    winner = first if first.status_code == 200 else second
    loser = second if winner is first else first
    assert winner.headers["ETag"] == '"2"'
    assert '"2"' in loser.json()["detail"]

    after = (await registry.client.get(url)).json()
    assert after["revision"] == 2
    history = (await registry.client.get(f"{url}/changes")).json()
    assert [h["action"] for h in history] == ["model_created", "model_updated"]
    if winner is first:
        assert after["owner_team"] == "growth"
        assert after["tags"] == {"tier": "gold"}
        assert {"field": "tags.domain", "old": "growth", "new": None} in history[1]["changes"]
        assert {"field": "owner_team", "old": "retention", "new": "growth"} in history[1]["changes"]
        assert history[1]["reason"] == "reorg"
    events = await registry.events_on(topics.MODEL_EVENTS, kit.about(name), expect=2)
    updated = [e for e in events if type(e.data).__name__ == "RegisteredModelUpdated"]
    assert len(updated) == 1
    assert updated[0].data.revision == 2
    assert updated[0].id == history[1]["event_id"]

    # A version's annotations: the same rules; its registered record never changes.
    v = await registry.register(name, "edit")
    vurl = f"{url}/versions/{v['version']}"
    patched = await registry.client.patch(
        vurl, json={"description": "recalibrated", "tags": {"stage": "shadow"}},
        headers={**kit.ALICE, "If-Match": '"1"'},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == {"stage": "shadow"}
    assert patched.json()["artifact_digest"] == v["artifact_digest"]
    stale = await registry.client.patch(
        vurl, json={"description": "x"}, headers={**kit.ALICE, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    # Bad edits are 422 naming the field.
    for bad, field in [
        ({"artifact_digest": kit.digest_of("other")}, "artifact_digest"),
        ({"tags": {f"k{i}": "v" for i in range(70)}}, "tags"),
    ]:
        refused = await registry.client.patch(
            vurl, json=bad, headers={**kit.ALICE, "If-Match": '"2"'}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == field
    too_many = await registry.client.patch(
        url, json={"tags": {f"k{i}": "v" for i in range(64)}},
        headers={**kit.ALICE, "If-Match": '"2"'},
    )  # fmt: skip
    assert too_many.status_code == 422
    assert "at most 64 tags" in too_many.json()["detail"]


async def test_protected_aliases_point_only_to_approved_versions(registry: Any, kit: Any) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    await registry.register(name, "p1")
    await registry.register(name, "p2")
    url = f"/api/v1/models/{name}/aliases"

    refused = await registry.client.put(
        f"{url}/champion", json={"version": 1, "reason": "best AUC"}, headers=kit.ALICE
    )
    assert refused.status_code == 409
    assert "'validating'" in refused.json()["detail"]
    # Any alias can be protected when set; then the same rule holds.
    custom = await registry.client.put(
        f"{url}/gold", json={"version": 1, "protected": True, "reason": "x"}, headers=kit.ALICE
    )
    assert custom.status_code == 409
    free = await registry.client.put(f"{url}/candidate", json={"version": 2}, headers=kit.ALICE)
    assert free.status_code == 200
    assert free.json()["protected"] is False

    digest = await _approve(registry, kit, name, 1)
    no_reason = await registry.client.put(f"{url}/champion", json={"version": 1}, headers=kit.ALICE)
    assert no_reason.status_code == 422
    assert "reason" in no_reason.json()["detail"]
    ok = await registry.client.put(
        f"{url}/champion", json={"version": 1, "reason": "best AUC"}, headers=kit.ALICE
    )
    assert ok.status_code == 200, ok.text
    assert (ok.json()["version"], ok.json()["protected"], ok.json()["artifact_digest"]) == (
        1, True, digest,
    )  # fmt: skip
    stale = await registry.client.put(
        f"{url}/champion", json={"version": 1, "reason": "x"},
        headers={**kit.ALICE, "If-Match": '"9"'},
    )  # fmt: skip
    assert stale.status_code == 412
    version = await registry.version(name, 1)
    assert version["aliases"] == ["champion"]
    model = (await registry.client.get(f"/api/v1/models/{name}")).json()
    assert model["aliases"] == {"candidate": 2, "champion": 1}

    # The approval lapses: the version is no longer approved, so champion is released.
    await registry.publish(kit.approval_expired(name, 1, digest))
    await registry.wait_state(name, 1, "validated")
    gone = await registry.client.get(f"{url}/champion")
    assert gone.status_code == 404
    history = (await registry.client.get(f"/api/v1/models/{name}/changes")).json()
    released = [h for h in history if h["alias"] == "champion"]
    assert [h["action"] for h in released] == ["alias_set", "alias_removed"]
    assert "no longer approved" in released[-1]["reason"]
    assert released[-1]["actor"] == "service:approver"

    removal = await registry.client.delete(f"{url}/candidate", headers=kit.ALICE)
    assert removal.status_code == 204
    assert (await registry.client.get(f"{url}/candidate")).status_code == 404
    bad = await registry.client.put(f"{url}/Bad Alias", json={"version": 1}, headers=kit.ALICE)
    assert bad.status_code == 422


async def test_requested_transitions_follow_the_lifecycle(registry: Any, kit: Any) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    await registry.register(name, "t1")
    url = f"/api/v1/models/{name}/versions/1"

    async def request(to_state: str, reason: str = "because") -> Any:
        return await registry.client.post(
            f"{url}/transitions", json={"to_state": to_state, "reason": reason}, headers=kit.ALICE
        )

    # States that follow from the platform's events cannot be requested.
    for state in ("registered", "validating", "validated", "validation_failed",
                  "pending_approval", "approved", "rejected", "deployed"):  # fmt: skip
        refused = await request(state)
        assert refused.status_code == 409, state
        assert refused.json()["type"].endswith("state-set-by-platform")
    # Deprecation only from deployed.
    early = await request("deprecated")
    assert early.status_code == 409
    assert "'validating' -> 'deprecated'" in early.json()["detail"]
    blank = await request("deprecated", reason="  ")
    assert blank.status_code == 422

    digest = await _approve(registry, kit, name, 1)
    assert (await request("deprecated")).status_code == 409
    ready = kit.deployment_status("dep-" + name, name, 1, digest, DeploymentStatus.READY)
    await registry.publish(ready)
    await registry.wait_state(name, 1, "deployed")
    await registry.client.put(
        f"/api/v1/models/{name}/aliases/production", json={"version": 1, "reason": "go live"},
        headers=kit.ALICE,
    )  # fmt: skip
    deprecated = await registry.client.post(
        f"{url}/deprecate", json={"reason": "superseded by v2"}, headers=kit.ALICE
    )
    assert deprecated.status_code == 200, deprecated.text
    body = deprecated.json()
    assert body["state"] == "deprecated"
    assert body["transitions"][-1]["reason"] == "superseded by v2"
    assert body["transitions"][-1]["actor"] == "user:alice"
    assert body["aliases"] == []  # production was released with the deprecation
    assert (await request("deprecated")).status_code == 409
    retired = await request("retired", reason="end of life")
    assert retired.status_code == 200
    assert retired.json()["state"] == "retired"
    again = await request("retired")
    assert again.status_code == 409
    assert "'retired'" in again.json()["detail"]
