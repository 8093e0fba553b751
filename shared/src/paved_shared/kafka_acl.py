"""Kafka principals, their SCRAM credentials and ACLs: who may publish and read what.

The map lives in ``paved_schemas.topics`` (``TOPIC_WRITERS``, ``PRINCIPAL_READS``,
``PRINCIPAL_GROUPS``); this module turns it into broker state with the Kafka Admin API
(SCRAM credential upserts, ACL bindings, topics), as the cluster's administrator. The
brokers run the KRaft ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``,
so anything not granted here is refused.

Passwords are generated once per principal into a secrets folder (files 0600, never in
the repository or a log) and read back from there; in Kubernetes they come from Secrets.

``python -m paved_shared.kafka_acl provision|rotate <principal>|show`` (admin credentials
from ``PAVED_KAFKA_SASL_*``, secrets folder from ``PAVED_KAFKA_SECRETS_DIR``).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from confluent_kafka.cimpl import NewTopic
from paved_schemas import topics

from paved_shared.kafka import KafkaAuth

USER_PREFIX = "paved-"
ADMIN_USER = "paved-admin"
BROKER_USER = "paved-broker"
SCRAM_ITERATIONS = 8192


class ProvisioningError(RuntimeError):
    """The brokers refused or failed a provisioning step (the message says which)."""


def username(principal: str) -> str:
    """The Kafka user of a Paved principal: ``registry`` -> ``paved-registry``."""
    return f"{USER_PREFIX}{principal}"


@dataclass(frozen=True)
class Grant:
    """One ALLOW ACL: ``principal`` may ``operation`` on ``resource`` ``name``."""

    principal: str
    resource: str  # "topic" | "group"
    name: str
    operation: str  # "READ" | "WRITE" | "DESCRIBE"

    def binding(self) -> AclBinding:
        return AclBinding(
            ResourceType.TOPIC if self.resource == "topic" else ResourceType.GROUP,
            self.name,
            ResourcePatternType.LITERAL,
            f"User:{username(self.principal)}",
            "*",
            AclOperation[self.operation],
            AclPermissionType.ALLOW,
        )


def grants() -> list[Grant]:
    """Every ACL the platform needs, derived from the ownership map (nothing else)."""
    out: set[Grant] = set()
    for topic, writers in topics.TOPIC_WRITERS.items():
        for w in writers:
            out.add(Grant(w, "topic", topic, "WRITE"))
            out.add(Grant(w, "topic", topic, "DESCRIBE"))
    for principal, reads in topics.PRINCIPAL_READS.items():
        for topic in reads:
            out.add(Grant(principal, "topic", topic, "READ"))
            out.add(Grant(principal, "topic", topic, "DESCRIBE"))
    for principal, groups in topics.PRINCIPAL_GROUPS.items():
        for group in groups:
            out.add(Grant(principal, "group", group, "READ"))
    return sorted(out, key=lambda g: (g.principal, g.resource, g.name, g.operation))


class SecretsDir:
    """One generated password per principal, each in its own 0600 file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def file(self, principal_or_user: str) -> Path:
        return self.path / f"{principal_or_user}.password"

    def password(self, principal_or_user: str) -> str:
        """The stored password, generated (32 random bytes, url-safe) on first use."""
        f = self.file(principal_or_user)
        if f.exists():
            return f.read_text(encoding="utf-8").strip()
        return self.rotate(principal_or_user)

    def rotate(self, principal_or_user: str) -> str:
        """A new password, written atomically with mode 0600."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_urlsafe(32)
        f = self.file(principal_or_user)
        tmp = f.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)
        tmp.replace(f)
        return value

    def auth(self, principal: str, *, protocol: str = "SASL_PLAINTEXT") -> KafkaAuth:
        """The KafkaAuth of ``principal`` (``admin`` for the administrator)."""
        user = ADMIN_USER if principal == "admin" else username(principal)
        return KafkaAuth(
            protocol=protocol,  # type: ignore[arg-type]
            username=user,
            password=self.password("admin" if principal == "admin" else principal),
        )


def _admin(bootstrap: str, auth: KafkaAuth) -> AdminClient:
    return AdminClient(
        {"bootstrap.servers": bootstrap, "log.connection.close": False, **auth.librdkafka()}
    )


def _wait(futures: Mapping[Any, Future[Any]], what: str, *, ok: Iterable[str] = ()) -> None:
    problems = []
    for key, fut in futures.items():
        try:
            fut.result(timeout=30)
        except KafkaException as exc:
            err = exc.args[0]
            if getattr(err, "name", lambda: "")() in ok:
                continue
            problems.append(f"{key}: {err}")
    if problems:
        raise ProvisioningError(f"{what} failed: " + "; ".join(problems))


def upsert_users(bootstrap: str, admin: KafkaAuth, passwords: Mapping[str, str]) -> None:
    """Create or change the SCRAM-SHA-512 and -256 credentials of each Kafka user."""
    if not passwords:
        return
    client = _admin(bootstrap, admin)  # must outlive its futures
    # A user's credential may be altered once per request: one request per mechanism.
    for mech in (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256):
        alterations: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(
                user, ScramCredentialInfo(mech, SCRAM_ITERATIONS), password.encode()
            )
            for user, password in passwords.items()
        ]
        _wait(client.alter_user_scram_credentials(alterations), "SCRAM upsert")


def apply_acls(bootstrap: str, admin: KafkaAuth, wanted: Iterable[Grant] | None = None) -> int:
    """Create the ACLs in ``wanted`` (default: ``grants()``) and delete every other ALLOW ACL
    of a ``paved-`` service user, so the broker state equals the map. Returns how many
    bindings the map has."""
    client = _admin(bootstrap, admin)
    bindings = [g.binding() for g in (grants() if wanted is None else wanted)]
    if bindings:
        _wait(client.create_acls(bindings), "ACL create")
    any_acl = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name (librdkafka filter)
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    existing: list[AclBinding] = client.describe_acls(any_acl).result(timeout=30)
    keep = {_key(b) for b in bindings}
    stale = [
        b for b in existing if b.principal.startswith(f"User:{USER_PREFIX}") and _key(b) not in keep
    ]
    if stale:
        filters = [
            AclBindingFilter(
                b.restype,
                b.name,
                b.resource_pattern_type,
                b.principal,
                b.host,
                b.operation,
                b.permission_type,
            )
            for b in stale
        ]
        _wait(client.delete_acls(filters), "ACL delete")
    return len(bindings)


def _key(b: AclBinding) -> tuple[str, str, str, str, str]:
    return (str(b.restype), b.name, b.principal, str(b.operation), str(b.permission_type))


def create_topics(
    bootstrap: str, admin: KafkaAuth, specs: Iterable[topics.TopicSpec] = topics.ALL_TOPICS
) -> list[str]:
    """Create the contract's topics that do not exist yet; return their names."""
    client = _admin(bootstrap, admin)
    meta = client.list_topics(timeout=30)
    replication = 1 if len(meta.brokers) < 3 else 3
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=replication,
            config=dict(s.config),
        )
        for s in specs
        if s.name not in meta.topics
    ]
    if new:
        _wait(client.create_topics(new), "topic create", ok=("TOPIC_ALREADY_EXISTS",))
    return [t.topic for t in new]


def provision(bootstrap: str, admin: KafkaAuth, store: SecretsDir) -> dict[str, KafkaAuth]:
    """Users for every principal, the ACL map, the topics; return each principal's auth."""
    principals = topics.ALL_PRINCIPALS
    upsert_users(bootstrap, admin, {username(p): store.password(p) for p in principals})
    apply_acls(bootstrap, admin)
    create_topics(bootstrap, admin)
    return {p: store.auth(p, protocol=admin.protocol) for p in principals}


def rotate(bootstrap: str, admin: KafkaAuth, store: SecretsDir, principal: str) -> None:
    """Give ``principal`` a new password (the old one stops working at once)."""
    if principal not in topics.ALL_PRINCIPALS:
        raise ProvisioningError(
            f"unknown principal {principal!r}; known: {', '.join(topics.ALL_PRINCIPALS)}"
        )
    upsert_users(bootstrap, admin, {username(principal): store.rotate(principal)})


def strimzi_users(cluster: str = "paved") -> list[dict[str, Any]]:
    """The same principals and ACLs as Strimzi ``KafkaUser`` resources (Kubernetes): the
    User Operator creates each SCRAM user, keeps its password in a Secret named after it,
    and applies exactly these ACLs (``python -m paved_shared.kafka_acl strimzi``)."""
    by_principal: dict[str, list[Grant]] = {}
    for g in grants():
        by_principal.setdefault(g.principal, []).append(g)
    users = []
    for principal in topics.ALL_PRINCIPALS:
        merged: dict[tuple[str, str], list[str]] = {}
        for g in by_principal.get(principal, []):
            merged.setdefault((g.resource, g.name), []).append(g.operation.capitalize())
        acls = [
            {
                "resource": {"type": resource, "name": name, "patternType": "literal"},
                "operations": sorted(ops),
            }
            for (resource, name), ops in sorted(merged.items())
        ]
        users.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {
                    "name": username(principal),
                    "labels": {"strimzi.io/cluster": cluster},
                },
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return users


def strimzi_yaml(cluster: str = "paved") -> str:
    """``strimzi_users`` as one multi-document YAML file (what ``k8s/kafka/`` holds)."""
    import yaml

    header = (
        "# Generated by `python -m paved_shared.kafka_acl strimzi` from\n"
        "# paved_schemas.topics (TOPIC_WRITERS, PRINCIPAL_READS, PRINCIPAL_GROUPS). Do not edit.\n"
    )
    return header + yaml.safe_dump_all(strimzi_users(cluster), sort_keys=False)


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "show"
    bootstrap = os.environ.get("PAVED_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    store = SecretsDir(Path(os.environ.get("PAVED_KAFKA_SECRETS_DIR", ".run/secrets/kafka")))
    admin = KafkaAuth.from_env()
    if admin.username is None:
        admin = store.auth("admin")
    try:
        if cmd == "provision":
            provision(bootstrap, admin, store)
            print(f"provisioned {len(topics.ALL_PRINCIPALS)} principals, {len(grants())} ACLs")
        elif cmd == "rotate" and len(argv) > 2:
            rotate(bootstrap, admin, store, argv[2])
            print(f"rotated the password of {username(argv[2])}; restart its processes")
        elif cmd == "strimzi":
            print(strimzi_yaml(), end="")
        elif cmd == "show":
            for g in grants():
                print(f"User:{username(g.principal)}\tALLOW\t{g.operation}\t{g.resource}:{g.name}")
        else:
            print(
                "usage: python -m paved_shared.kafka_acl provision|rotate <principal>|show|strimzi",
                file=sys.stderr,
            )
            return 2
    except (ProvisioningError, KafkaException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
