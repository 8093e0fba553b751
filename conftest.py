"""Session-wide test infrastructure: a real Kafka and PostgreSQL on free ports.

The stack starts once, lazily, for the first test that asks for it, in a fresh
temporary folder, and is stopped at the end of the session. Set
``PAVED_TEST_KAFKA_BOOTSTRAP`` and ``PAVED_TEST_DATABASE_URL`` to reuse a running one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

if typing.TYPE_CHECKING:
    from paved_shared.kafka import KafkaAuth


@dataclass(frozen=True)
class StackInfo:
    """Where the test session's Kafka and PostgreSQL listen, and the Kafka secrets folder.

    Kafka has SASL/SCRAM and ACLs on. Test code that builds its own clients runs as the
    cluster administrator (``PAVED_KAFKA_SASL_*`` in the environment, read by
    ``KafkaAuth.from_env``); ``auth(principal)`` gives one service's or client's own
    principal, e.g. to show the broker refusing it.
    """

    bootstrap: str
    dsn: str
    secrets_dir: Path | None = None

    def auth(self, principal: str) -> KafkaAuth:
        from paved_shared.kafka_acl import SecretsDir

        if self.secrets_dir is None:
            raise RuntimeError("this reused stack has no PAVED_KAFKA_SECRETS_DIR")
        return SecretsDir(self.secrets_dir).auth(principal)

    def service_env(self, principal: str) -> dict[str, str]:
        """Environment for a process that runs as ``principal``."""
        return self.auth(principal).env()


_KAFKA_ENV = (
    "PAVED_KAFKA_SECURITY_PROTOCOL",
    "PAVED_KAFKA_SASL_MECHANISM",
    "PAVED_KAFKA_SASL_USERNAME",
    "PAVED_KAFKA_SASL_PASSWORD",
    "PAVED_KAFKA_SECRETS_DIR",
)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    if (bs := os.environ.get("PAVED_TEST_KAFKA_BOOTSTRAP")) and (
        dsn := os.environ.get("PAVED_TEST_DATABASE_URL")
    ):
        secrets_dir = os.environ.get("PAVED_KAFKA_SECRETS_DIR")
        yield StackInfo(
            bootstrap=bs, dsn=dsn, secrets_dir=Path(secrets_dir) if secrets_dir else None
        )
        return
    from paved_shared.devstack import DevStack

    run_dir = Path(tempfile.mkdtemp(prefix="paved-test-"))
    # The postgres user (initdb refuses root) must be able to enter the folder.
    os.chmod(run_dir, 0o755)  # noqa: S103
    # Share the fetched Kafka jars with `make up` instead of downloading per session.
    shared_kafka = DevStack.from_env().kafka
    shared_kafka.fetch()
    dev = DevStack.ephemeral(run_dir)
    dev.kafka.libs.symlink_to(shared_kafka.libs, target_is_directory=True)
    saved = {k: os.environ.get(k) for k in _KAFKA_ENV}
    try:
        dev.up()
        os.environ.update(dev.kafka.admin_auth().env())
        os.environ["PAVED_KAFKA_SECRETS_DIR"] = str(dev.kafka.secrets.path)
        yield StackInfo(
            bootstrap=dev.kafka.bootstrap, dsn=dev.postgres.dsn, secrets_dir=dev.kafka.secrets.path
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        dev.down()
        shutil.rmtree(run_dir, ignore_errors=True)


# --- Cloud stand-ins (issue 5): a real moto_server and GCS emulator on loopback -------------
# Generic for every test that needs AWS or GCS: `moto_server.endpoint_url`,
# `moto_server.create_bucket()`, `moto_server.env()` / `.store_config()` (obviously fake
# credentials); the same on `gcs_emulator`. Each starts once per session, lazily.

import typing  # noqa: E402

if typing.TYPE_CHECKING:
    from paved_shared.cloud_emulators import GCSEmulator, MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from paved_shared.cloud_emulators import MotoServer

    workdir = Path(tempfile.mkdtemp(prefix="paved-moto-"))
    server = MotoServer.start(workdir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSEmulator]:
    from paved_shared.cloud_emulators import GCSEmulator

    data_dir = Path(tempfile.mkdtemp(prefix="paved-gcs-"))
    emulator = GCSEmulator.start(data_dir)
    try:
        yield emulator
    finally:
        emulator.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# --- OpenID provider (issue 6): a real Keycloak on loopback, started once per session -------
# `oidc_provider.issuer`, `.login(user)` (authorization-code flow with PKCE and
# prompt=login, as a browser would: the token carries a fresh auth_time),
# `.password_token(user)`, `.client_credentials_token()`, `.refresh(tokens)`,
# `.rotate_signing_key()`; users/groups/passwords in infra/oidc/paved-realm.json.
# Installed and cached by infra/oidc/keycloak.sh (Maven Central, Java >= 21).
# Set PAVED_TEST_OIDC_URL (e.g. http://127.0.0.1:8180) to reuse a running one.

import contextlib  # noqa: E402
import time  # noqa: E402


@dataclass(frozen=True)
class OidcTokens:
    """What the provider's token endpoint answered."""

    access_token: str
    refresh_token: str | None
    id_token: str | None


@dataclass
class OidcProvider:
    """A running Keycloak with the `paved` realm, and the calls tests make against it."""

    base_url: str
    admin_user: str = "admin"
    admin_password: str = "paved-local-admin"  # noqa: S105 (local test provider)
    realm: str = "paved"
    audience: str = "paved-api"

    USERS: typing.ClassVar[dict[str, str]] = {
        "alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
        "erin": "erin-pw", "frank": "frank-pw",
    }  # fmt: skip
    REDIRECT_URI: typing.ClassVar[str] = "http://127.0.0.1/callback"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.realm}"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def _tokens(self, form: dict[str, str]) -> OidcTokens:
        import httpx

        r = httpx.post(self.token_url, data=form, timeout=30)
        assert r.status_code == 200, f"token endpoint said {r.status_code}: {r.text}"
        body = r.json()
        return OidcTokens(body["access_token"], body.get("refresh_token"), body.get("id_token"))

    def password_token(self, user: str, *, client_id: str = "paved-cli") -> str:
        """Resource-owner password grant (no auth_time in Keycloak's access token)."""
        return self._tokens(
            {"grant_type": "password", "client_id": client_id, "username": user,
             "password": self.USERS[user], "scope": "openid"}
        ).access_token  # fmt: skip

    def client_credentials_token(
        self,
        client_id: str = "paved-pipeline",
        secret: str = "pipeline-test-secret",  # noqa: S107
    ) -> str:
        return self._tokens(
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        ).access_token

    def login(self, user: str, *, base_url: str | None = None) -> OidcTokens:
        """An interactive login (authorization code + PKCE, prompt=login) driven over HTTP,
        as a browser would; ``base_url`` reaches the provider under another host name."""
        import base64
        import hashlib
        import html
        import re
        import secrets
        import urllib.parse

        import httpx

        base = (base_url or self.base_url) + f"/realms/{self.realm}/protocol/openid-connect"
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        with httpx.Client(timeout=30) as http:
            page = http.get(base + "/auth", params={
                "client_id": "paved-cli", "response_type": "code", "scope": "openid",
                "redirect_uri": self.REDIRECT_URI, "code_challenge": challenge,
                "code_challenge_method": "S256", "state": secrets.token_hex(8),
                "prompt": "login",
            })  # fmt: skip
            # Keycloak marks its cookies Secure; over loopback http send them by hand.
            cookies = "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("set-cookie"))
            form = re.search(r'<form[^>]*action="([^"]+)"', page.text)
            assert form, f"no login form at {page.url}: {page.text[:300]}"
            done = http.post(
                html.unescape(form.group(1)),
                headers={"Cookie": cookies},
                data={"username": user, "password": self.USERS[user], "credentialId": ""},
            )
            location = done.headers.get("location", "")
            assert done.status_code == 302, f"login of {user} failed: {done.status_code}"
            code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
            r = http.post(base + "/token", data={
                "grant_type": "authorization_code", "client_id": "paved-cli", "code": code,
                "redirect_uri": self.REDIRECT_URI, "code_verifier": verifier,
            })  # fmt: skip
        assert r.status_code == 200, f"code exchange said {r.status_code}: {r.text}"
        body = r.json()
        return OidcTokens(body["access_token"], body.get("refresh_token"), body.get("id_token"))

    def refresh(self, tokens: OidcTokens) -> OidcTokens:
        """New tokens from the refresh token: same login, so the same auth_time."""
        assert tokens.refresh_token
        return self._tokens(
            {"grant_type": "refresh_token", "client_id": "paved-cli",
             "refresh_token": tokens.refresh_token}
        )  # fmt: skip

    def admin(self, method: str, path: str, **kw: typing.Any) -> typing.Any:
        """Call the admin REST API of the realm (``path`` under /admin/realms/<realm>)."""
        import httpx

        tok = httpx.post(
            f"{self.base_url}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli",
                  "username": self.admin_user, "password": self.admin_password},
            timeout=30,
        ).json()["access_token"]  # fmt: skip
        r = httpx.request(
            method, f"{self.base_url}/admin/realms/{self.realm}{path}",
            headers={"Authorization": f"Bearer {tok}"}, timeout=30, **kw,
        )  # fmt: skip
        assert r.status_code < 300, f"admin {method} {path} said {r.status_code}: {r.text}"
        return r.json() if r.content else None

    def active_kid(self, alg: str = "RS256") -> str:
        keys = self.admin("GET", "/keys")
        return str(keys["active"][alg])

    def rotate_signing_key(self) -> str:
        """Add a new RS256 key with a higher priority (Keycloak signs with it from now on,
        the old key stays published for tokens already out); return the new kid."""
        import uuid

        realm_id = self.admin("GET", "")["id"]
        old = self.active_kid()
        self.admin("POST", "/components", json={
            "name": f"rotated-{uuid.uuid4().hex[:8]}", "providerId": "rsa-generated",
            "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm_id,
            "config": {"priority": [str(int(time.time()))], "keySize": ["2048"],
                       "algorithm": ["RS256"]},
        })  # fmt: skip
        new = self.active_kid()
        assert new != old, "Keycloak kept signing with the old key after the rotation"
        return new


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    import signal
    import subprocess
    import urllib.request

    if url := os.environ.get("PAVED_TEST_OIDC_URL"):
        yield OidcProvider(url.rstrip("/"))
        return
    script = Path(__file__).parent / "infra" / "oidc" / "keycloak.sh"
    subprocess.run(["bash", str(script), "fetch"], check=True)
    workdir = Path(tempfile.mkdtemp(prefix="paved-oidc-"))
    http, mgmt = _free_port(), _free_port()
    log_file = (workdir / "keycloak.log").open("wb")
    proc = subprocess.Popen(
        ["bash", str(script), "run", str(workdir / "data"), str(http), str(mgmt)],
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    provider = OidcProvider(f"http://127.0.0.1:{http}")
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(  # noqa: S310
                    provider.issuer + "/.well-known/openid-configuration", timeout=2
                ):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "keycloak.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"Keycloak did not start on port {http}:\n{log}") from None
                time.sleep(0.3)
        yield provider
    finally:
        # The process group is the one this fixture started (start_new_session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log_file.close()
        shutil.rmtree(workdir, ignore_errors=True)
