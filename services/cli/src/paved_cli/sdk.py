"""The Paved Python SDK: typed clients for the registry and approver APIs, and Kafka
helpers to publish commands and follow deployment status.

``AsyncPavedClient`` and ``PavedClient`` (sync) expose the same methods; both build
their requests with one ``_Calls`` table so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from paved_schemas import topics
from paved_schemas.base import Contract
from paved_schemas.envelope import ContractError, Envelope, parse_envelope
from paved_schemas.events import DeploymentStatusChanged
from paved_shared.kafka import KafkaAuth, kafka_auth, topic_partitions

JSON = dict[str, Any]


class ModelDoc(TypedDict, total=False):
    """A registered model as the registry returns it (``GET /api/v1/models/{name}``)."""

    name: str
    description: str
    owner_team: str
    tags: dict[str, str]
    created_via: str
    created_by: str
    created_by_name: str
    created_at: str
    updated_at: str | None
    latest_version: int | None
    revision: int
    aliases: dict[str, int]


class TransitionDoc(TypedDict, total=False):
    """One lifecycle transition of a version."""

    from_state: str | None
    to_state: str
    reason: str | None
    actor: str
    actor_name: str
    occurred_at: str
    event_id: str
    cause_event_id: str | None


class VersionDoc(TypedDict, total=False):
    """A model version (summary fields always; the full record from ``get_version``)."""

    model_name: str
    version: int
    state: str
    artifact_digest: str
    framework: str
    registered_by: str
    registered_at: str
    description: str
    risk_tier: str | None
    tags: dict[str, str]
    owner_team: str
    artifact_uri: str
    updated_at: str
    signature: JSON
    model_card: JSON
    lineage: JSON | None
    registered_by_name: str
    request_id: str
    transitions: list[TransitionDoc]
    deployments: list[JSON]
    revision: int
    aliases: list[str]


class VersionPage(TypedDict):
    """One page of ``search_versions``; pass ``next_cursor`` back for the next one."""

    items: list[VersionDoc]
    next_cursor: str | None


class AliasDoc(TypedDict):
    """An alias of a model and the version it points to."""

    model_name: str
    alias: str
    version: int
    protected: bool
    revision: int
    state: str
    artifact_digest: str
    updated_by: str
    updated_by_name: str
    updated_at: str


def if_match(revision: int) -> dict[str, str]:
    """The If-Match header for a record read at ``revision`` (optimistic concurrency)."""
    return {"If-Match": f'"{revision}"'}


def _query(**params: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in params.items()
        if v is not None and not (isinstance(v, list | tuple) and not v)
    }


class PavedError(Exception):
    """An API call was refused; ``detail`` is the server's RFC 9457 problem detail."""

    def __init__(self, status: int, title: str, detail: str, body: JSON | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body or {}


@dataclass(frozen=True)
class Call:
    """One HTTP request: which service, method, path, body, extra headers."""

    service: str  # "registry" | "approver"
    method: str
    path: str
    json: JSON | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


class _Calls:
    """Every API call of the SDK, as data."""

    @staticmethod
    def create_model(
        name: str, description: str = "", owner_team: str = "", tags: dict[str, str] | None = None
    ) -> Call:
        body = {
            "name": name,
            "description": description,
            "owner_team": owner_team,
            "tags": tags or {},
        }
        return Call("registry", "POST", "/api/v1/models", body)

    @staticmethod
    def list_models() -> Call:
        return Call("registry", "GET", "/api/v1/models")

    @staticmethod
    def get_model(name: str) -> Call:
        return Call("registry", "GET", f"/api/v1/models/{name}")

    @staticmethod
    def register_version(model: str, body: JSON, idempotency_key: str | None) -> Call:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Call("registry", "POST", f"/api/v1/models/{model}/versions", body, headers=headers)

    @staticmethod
    def list_versions(model: str) -> Call:
        return Call("registry", "GET", f"/api/v1/models/{model}/versions")

    @staticmethod
    def get_version(model: str, version: int) -> Call:
        return Call("registry", "GET", f"/api/v1/models/{model}/versions/{version}")

    @staticmethod
    def request_deployment(model: str, version: int, target: str, spec: JSON | None) -> Call:
        body: JSON = {"target": target}
        if spec is not None:
            body["spec"] = spec
        return Call(
            "registry", "POST", f"/api/v1/models/{model}/versions/{version}/deployments", body
        )

    @staticmethod
    def get_deployment(deployment_id: str) -> Call:
        return Call("registry", "GET", f"/api/v1/deployments/{deployment_id}")

    @staticmethod
    def undeploy(deployment_id: str, reason: str) -> Call:
        return Call(
            "registry", "POST", f"/api/v1/deployments/{deployment_id}/undeploy", {"reason": reason}
        )

    @staticmethod
    def retire(model: str, version: int, reason: str) -> Call:
        return Call(
            "registry",
            "POST",
            f"/api/v1/models/{model}/versions/{version}/retire",
            {"reason": reason},
        )

    @staticmethod
    def search_models(**query: Any) -> Call:
        return Call("registry", "GET", "/api/v1/models", params=_query(**query))

    @staticmethod
    def update_model(name: str, revision: int, body: JSON) -> Call:
        return Call("registry", "PATCH", f"/api/v1/models/{name}", body, headers=if_match(revision))

    @staticmethod
    def update_version(model: str, version: int, revision: int, body: JSON) -> Call:
        return Call(
            "registry", "PATCH", f"/api/v1/models/{model}/versions/{version}", body,
            headers=if_match(revision),
        )  # fmt: skip

    @staticmethod
    def search_versions(**query: Any) -> Call:
        return Call("registry", "GET", "/api/v1/versions", params=_query(**query))

    @staticmethod
    def transition(model: str, version: int, to_state: str, reason: str) -> Call:
        return Call(
            "registry", "POST", f"/api/v1/models/{model}/versions/{version}/transitions",
            {"to_state": to_state, "reason": reason},
        )  # fmt: skip

    @staticmethod
    def list_aliases(model: str) -> Call:
        return Call("registry", "GET", f"/api/v1/models/{model}/aliases")

    @staticmethod
    def get_alias(model: str, alias: str) -> Call:
        return Call("registry", "GET", f"/api/v1/models/{model}/aliases/{alias}")

    @staticmethod
    def set_alias(
        model: str, alias: str, version: int, reason: str | None, protected: bool
    ) -> Call:
        body: JSON = {"version": version, "protected": protected}
        if reason:
            body["reason"] = reason
        return Call("registry", "PUT", f"/api/v1/models/{model}/aliases/{alias}", body)

    @staticmethod
    def remove_alias(model: str, alias: str, reason: str | None) -> Call:
        return Call(
            "registry", "DELETE", f"/api/v1/models/{model}/aliases/{alias}",
            params=_query(reason=reason),
        )  # fmt: skip

    @staticmethod
    def list_changes(model: str, after: int, limit: int) -> Call:
        return Call(
            "registry", "GET", f"/api/v1/models/{model}/changes",
            params={"after": after, "limit": limit},
        )  # fmt: skip

    @staticmethod
    def list_approvals(state: str | None, model: str | None) -> Call:
        params = {k: v for k, v in {"state": state, "model": model}.items() if v}
        return Call("approver", "GET", "/api/v1/approvals", params=params)

    @staticmethod
    def get_approval(approval_id: str) -> Call:
        return Call("approver", "GET", f"/api/v1/approvals/{approval_id}")

    @staticmethod
    def decide(approval_id: str, decision: str, meaning: str, reason: str) -> Call:
        body = {"decision": decision, "meaning": meaning, "reason": reason}
        return Call("approver", "POST", f"/api/v1/approvals/{approval_id}/decisions", body)


def _result(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            body = {"detail": resp.text}
        if not isinstance(body, dict):
            body = {"detail": str(body)}
        raise PavedError(
            resp.status_code,
            str(body.get("title", resp.reason_phrase)),
            str(body.get("detail", body)),
            body,
        )
    if not resp.content:
        return {}
    return resp.json()


def version_body(
    *,
    artifact_uri: str,
    artifact_digest: str,
    framework: str,
    signature: JSON,
    model_card: JSON,
    lineage: JSON | None = None,
    tags: dict[str, str] | None = None,
    version: int | None = None,
) -> JSON:
    """The JSON body of a version registration."""
    body: JSON = {
        "artifact_uri": artifact_uri,
        "artifact_digest": artifact_digest,
        "framework": framework,
        "signature": signature,
        "model_card": model_card,
        "tags": tags or {},
    }
    if lineage is not None:
        body["lineage"] = lineage
    if version is not None:
        body["version"] = version
    return body


def identity_headers(user: str | None = None, user_name: str | None = None) -> dict[str, str]:
    """Who the caller is, as every Paved API reads it.

    With SSO, the OIDC access token in ``PAVED_TOKEN`` (a bearer token). In dev-headers
    mode, ``user``/``user_name`` (default ``PAVED_USER``/``PAVED_USER_NAME``, else
    ``$USER``), and ``PAVED_ROLES``/``PAVED_TEAMS`` to narrow the roles and teams claimed
    (unset, a dev-headers API grants every role but admin, in every team).
    """
    import os

    fallback = os.environ.get("USER", "unknown")
    user = user or os.environ.get("PAVED_USER") or fallback
    headers = {
        "X-Paved-User": user,
        "X-Paved-User-Name": user_name or os.environ.get("PAVED_USER_NAME") or user,
    }
    if token := os.environ.get("PAVED_TOKEN", "").strip():
        headers["Authorization"] = f"Bearer {token}"
    for variable, header in (("PAVED_ROLES", "X-Paved-Roles"), ("PAVED_TEAMS", "X-Paved-Teams")):
        if (value := os.environ.get(variable)) is not None:
            headers[header] = value
    return headers


class _Base:
    def __init__(self, registry_url: str, approver_url: str, *, user: str, user_name: str) -> None:
        self.urls = {"registry": registry_url.rstrip("/"), "approver": approver_url.rstrip("/")}
        self.actor_headers = identity_headers(user, user_name)

    def _request_args(self, call: Call) -> JSON:
        return {
            "method": call.method,
            "url": self.urls[call.service] + call.path,
            "json": call.json,
            "params": call.params,
            "headers": {**self.actor_headers, **(call.headers or {})},
        }


class AsyncPavedClient(_Base):
    """Async client for the registry and approver HTTP APIs."""

    def __init__(
        self,
        registry_url: str,
        approver_url: str,
        *,
        user: str,
        user_name: str,
        timeout_s: float = 30.0,
    ) -> None:
        super().__init__(registry_url, approver_url, user=user, user_name=user_name)
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def __aenter__(self) -> AsyncPavedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, call: Call) -> Any:
        """Send one call; raise ``PavedError`` with the server's reason on 4xx/5xx."""
        return _result(await self._http.request(**self._request_args(call)))

    async def create_model(self, name: str, **kw: Any) -> JSON:
        result: JSON = await self.call(_Calls.create_model(name, **kw))
        return result

    async def register_version(
        self, model: str, body: JSON, idempotency_key: str | None = None
    ) -> JSON:
        result: JSON = await self.call(_Calls.register_version(model, body, idempotency_key))
        return result

    async def get_version(self, model: str, version: int) -> JSON:
        result: JSON = await self.call(_Calls.get_version(model, version))
        return result

    async def request_deployment(
        self, model: str, version: int, target: str = "local", spec: JSON | None = None
    ) -> JSON:
        result: JSON = await self.call(_Calls.request_deployment(model, version, target, spec))
        return result

    async def get_deployment(self, deployment_id: str) -> JSON:
        result: JSON = await self.call(_Calls.get_deployment(deployment_id))
        return result

    async def undeploy(self, deployment_id: str, reason: str) -> JSON:
        """Ask the registry to take one deployment down (deployer role in the owning team)."""
        result: JSON = await self.call(_Calls.undeploy(deployment_id, reason))
        return result

    async def list_approvals(self, state: str | None = None, model: str | None = None) -> Any:
        return await self.call(_Calls.list_approvals(state, model))

    async def decide(self, approval_id: str, decision: str, meaning: str, reason: str) -> JSON:
        result: JSON = await self.call(_Calls.decide(approval_id, decision, meaning, reason))
        return result

    # -- catalog: discovery, edits, aliases, lifecycle requests ---------------------------

    async def get_model(self, name: str) -> ModelDoc:
        """One model with its aliases and ``revision`` (what ``update_model`` needs)."""
        result: ModelDoc = await self.call(_Calls.get_model(name))
        return result

    async def list_models(self, **query: Any) -> list[ModelDoc]:
        """Models; filters ``q``, ``owner_team``, ``name_prefix``, ``tag`` (list of
        ``key:value``), ``sort``, ``limit``, ``cursor``."""
        result: list[ModelDoc] = await self.call(_Calls.search_models(**query))
        return result

    async def list_versions(self, model: str) -> list[VersionDoc]:
        """Every version of a model, oldest first."""
        result: list[VersionDoc] = await self.call(_Calls.list_versions(model))
        return result

    async def search_versions(self, **query: Any) -> VersionPage:
        """One page of discovery: ``q`` (full text), ``name``, ``name_prefix``,
        ``owner_team``, ``state``/``framework``/``risk_tier``/``tag`` (lists), ``sort``,
        ``limit``, ``cursor``."""
        result: VersionPage = await self.call(_Calls.search_versions(**query))
        return result

    async def iter_versions(self, **query: Any) -> AsyncIterator[VersionDoc]:
        """Every version matching ``query``, following the cursor page by page."""
        cursor: str | None = None
        while True:
            page = await self.search_versions(**query, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def update_model(self, name: str, *, revision: int, reason: str | None = None,
                           **changes: Any) -> ModelDoc:  # fmt: skip
        """Change ``description``, ``owner_team`` or ``tags`` (None removes a tag) of the
        model read at ``revision``; ``PavedError`` 412 if someone changed it since."""
        body = {**_query(**changes), **({"reason": reason} if reason else {})}
        result: ModelDoc = await self.call(_Calls.update_model(name, revision, body))
        return result

    async def update_version(self, model: str, version: int, *, revision: int,
                             reason: str | None = None, **changes: Any) -> VersionDoc:  # fmt: skip
        """Change a version's ``description`` or ``tags`` (read at ``revision``)."""
        body = {**_query(**changes), **({"reason": reason} if reason else {})}
        result: VersionDoc = await self.call(_Calls.update_version(model, version, revision, body))
        return result

    async def transition(self, model: str, version: int, to_state: str, reason: str) -> VersionDoc:
        """Request ``deprecated`` or ``retired`` (the lifecycle decides if it is legal)."""
        result: VersionDoc = await self.call(_Calls.transition(model, version, to_state, reason))
        return result

    async def retire(self, model: str, version: int, reason: str) -> VersionDoc:
        result: VersionDoc = await self.call(_Calls.retire(model, version, reason))
        return result

    async def list_aliases(self, model: str) -> list[AliasDoc]:
        result: list[AliasDoc] = await self.call(_Calls.list_aliases(model))
        return result

    async def get_alias(self, model: str, alias: str) -> AliasDoc:
        result: AliasDoc = await self.call(_Calls.get_alias(model, alias))
        return result

    async def set_alias(self, model: str, alias: str, version: int, *, reason: str | None = None,
                        protected: bool = False) -> AliasDoc:  # fmt: skip
        """Point ``alias`` at ``version`` (protected aliases: approved versions, a reason)."""
        result: AliasDoc = await self.call(
            _Calls.set_alias(model, alias, version, reason, protected)
        )
        return result

    async def remove_alias(self, model: str, alias: str, reason: str | None = None) -> None:
        await self.call(_Calls.remove_alias(model, alias, reason))

    async def list_changes(self, model: str, after: int = 0, limit: int = 100) -> list[JSON]:
        """The model's metadata change history (old and new values), oldest first."""
        result: list[JSON] = await self.call(_Calls.list_changes(model, after, limit))
        return result

    async def wait_for_state(
        self,
        model: str,
        version: int,
        states: Collection[str],
        *,
        timeout_s: float = 120.0,
        on_change: Callable[[str], None] | None = None,
    ) -> JSON:
        """Poll the version until its state is one of ``states``; report each change."""
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            current = await self.get_version(model, version)
            state = str(current.get("state"))
            if state != last and on_change is not None:
                on_change(state)
            last = state
            if state in states:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{model} v{version} is still {state!r} after {timeout_s:.0f}s; "
                    f"waited for {sorted(states)}"
                )
            await asyncio.sleep(0.3)


class PavedClient(_Base):
    """Synchronous client (scripts, notebooks); same calls as ``AsyncPavedClient``."""

    def __init__(
        self,
        registry_url: str,
        approver_url: str,
        *,
        user: str,
        user_name: str,
        timeout_s: float = 30.0,
    ) -> None:
        super().__init__(registry_url, approver_url, user=user, user_name=user_name)
        self._http = httpx.Client(timeout=timeout_s)

    def __enter__(self) -> PavedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, call: Call) -> Any:
        return _result(self._http.request(**self._request_args(call)))

    def create_model(self, name: str, **kw: Any) -> JSON:
        result: JSON = self.call(_Calls.create_model(name, **kw))
        return result

    def register_version(self, model: str, body: JSON, idempotency_key: str | None = None) -> JSON:
        result: JSON = self.call(_Calls.register_version(model, body, idempotency_key))
        return result

    def get_version(self, model: str, version: int) -> JSON:
        result: JSON = self.call(_Calls.get_version(model, version))
        return result

    def list_versions(self, model: str) -> Any:
        return self.call(_Calls.list_versions(model))

    def list_models(self, **query: Any) -> list[ModelDoc]:
        """Models; filters ``q``, ``owner_team``, ``name_prefix``, ``tag`` (list of
        ``key:value``), ``sort``, ``limit``, ``cursor``."""
        result: list[ModelDoc] = self.call(_Calls.search_models(**query))
        return result

    def request_deployment(
        self, model: str, version: int, target: str = "local", spec: JSON | None = None
    ) -> JSON:
        result: JSON = self.call(_Calls.request_deployment(model, version, target, spec))
        return result

    def get_deployment(self, deployment_id: str) -> JSON:
        result: JSON = self.call(_Calls.get_deployment(deployment_id))
        return result

    def undeploy(self, deployment_id: str, reason: str) -> JSON:
        """Ask the registry to take one deployment down (deployer role in the owning team)."""
        result: JSON = self.call(_Calls.undeploy(deployment_id, reason))
        return result

    def retire(self, model: str, version: int, reason: str) -> JSON:
        result: JSON = self.call(_Calls.retire(model, version, reason))
        return result

    # -- catalog: discovery, edits, aliases, lifecycle requests ---------------------------

    def get_model(self, name: str) -> ModelDoc:
        """One model with its aliases and ``revision`` (what ``update_model`` needs)."""
        result: ModelDoc = self.call(_Calls.get_model(name))
        return result

    def search_versions(self, **query: Any) -> VersionPage:
        """One page of discovery (see ``AsyncPavedClient.search_versions``)."""
        result: VersionPage = self.call(_Calls.search_versions(**query))
        return result

    def iter_versions(self, **query: Any) -> Iterator[VersionDoc]:
        """Every version matching ``query``, following the cursor page by page."""
        cursor: str | None = None
        while True:
            page = self.search_versions(**query, cursor=cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def update_model(self, name: str, *, revision: int, reason: str | None = None,
                     **changes: Any) -> ModelDoc:  # fmt: skip
        """Change ``description``, ``owner_team`` or ``tags`` of the model read at ``revision``."""
        body = {**_query(**changes), **({"reason": reason} if reason else {})}
        result: ModelDoc = self.call(_Calls.update_model(name, revision, body))
        return result

    def update_version(self, model: str, version: int, *, revision: int,
                       reason: str | None = None, **changes: Any) -> VersionDoc:  # fmt: skip
        """Change a version's ``description`` or ``tags`` (read at ``revision``)."""
        body = {**_query(**changes), **({"reason": reason} if reason else {})}
        result: VersionDoc = self.call(_Calls.update_version(model, version, revision, body))
        return result

    def transition(self, model: str, version: int, to_state: str, reason: str) -> VersionDoc:
        """Request ``deprecated`` or ``retired`` (the lifecycle decides if it is legal)."""
        result: VersionDoc = self.call(_Calls.transition(model, version, to_state, reason))
        return result

    def list_aliases(self, model: str) -> list[AliasDoc]:
        result: list[AliasDoc] = self.call(_Calls.list_aliases(model))
        return result

    def get_alias(self, model: str, alias: str) -> AliasDoc:
        result: AliasDoc = self.call(_Calls.get_alias(model, alias))
        return result

    def set_alias(self, model: str, alias: str, version: int, *, reason: str | None = None,
                  protected: bool = False) -> AliasDoc:  # fmt: skip
        """Point ``alias`` at ``version`` (protected aliases: approved versions, a reason)."""
        result: AliasDoc = self.call(_Calls.set_alias(model, alias, version, reason, protected))
        return result

    def remove_alias(self, model: str, alias: str, reason: str | None = None) -> None:
        self.call(_Calls.remove_alias(model, alias, reason))

    def list_changes(self, model: str, after: int = 0, limit: int = 100) -> list[JSON]:
        """The model's metadata change history (old and new values), oldest first."""
        result: list[JSON] = self.call(_Calls.list_changes(model, after, limit))
        return result

    def list_approvals(self, state: str | None = None, model: str | None = None) -> Any:
        return self.call(_Calls.list_approvals(state, model))

    def get_approval(self, approval_id: str) -> JSON:
        result: JSON = self.call(_Calls.get_approval(approval_id))
        return result

    def decide(self, approval_id: str, decision: str, meaning: str, reason: str) -> JSON:
        result: JSON = self.call(_Calls.decide(approval_id, decision, meaning, reason))
        return result


# -- Kafka ------------------------------------------------------------------------------


async def publish_command(
    bootstrap: str,
    data: Contract,
    *,
    actor: str,
    actorname: str,
    source: str = "/paved/sdk",
    identity: list[tuple[str, bytes]] | None = None,
    auth: KafkaAuth | None = None,
) -> Envelope[Any]:
    """Publish a command (e.g. ``RegisterModelVersion``) to its topic, durably.

    ``identity`` are the headers that prove who sends it (``identity_headers(token=...)``,
    or dev headers against a dev-headers platform); the consumer verifies them and refuses
    a command whose payload names anyone else. ``auth`` is the Kafka principal (default:
    from ``PAVED_KAFKA_SASL_*``); the broker only lets it write the topics it owns.
    """
    event = Envelope.new(data, source=source, actor=actor, actorname=actorname)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
        **kafka_auth(auth).aiokafka(),
    )  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(
            data.TOPIC,
            value=event.to_json_bytes(),
            key=data.key().encode(),
            headers=[
                ("ce_id", event.id.encode()),
                ("ce_type", event.type.encode()),
                ("content-type", b"application/json"),
                *(identity or []),
            ],
        )
    finally:
        await producer.stop()
    return event


async def watch_deployments(
    bootstrap: str,
    *,
    deployment_id: str | None = None,
    model: str | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    auth: KafkaAuth | None = None,
) -> AsyncIterator[Envelope[DeploymentStatusChanged]]:
    """Yield deployment status events as they are published (optionally filtered).

    Reads without a consumer group (nothing is committed, any number of watchers);
    starts at the end of the topic unless ``from_beginning``. Stops after
    ``idle_timeout_s`` without a matching event when given.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **kafka_auth(auth).aiokafka(),
        enable_auto_commit=False,
        group_id=None,
        client_id=f"paved-watch-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    try:
        assigned = await topic_partitions(consumer, topics.DEPLOYMENT_STATUS)
        consumer.assign(assigned)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        last_seen = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    try:
                        env = parse_envelope(record.value or b"")
                    except ContractError:
                        continue
                    data = env.data
                    if not isinstance(data, DeploymentStatusChanged):
                        continue
                    if deployment_id and data.deployment_id != deployment_id:
                        continue
                    if model and data.model_name != model:
                        continue
                    last_seen = time.monotonic()
                    yield env
            if idle_timeout_s is not None and time.monotonic() - last_seen > idle_timeout_s:
                return
    finally:
        await consumer.stop()
