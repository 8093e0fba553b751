#!/usr/bin/env bash
# A real OpenID Connect provider for tests and local use: Keycloak from Maven Central.
#
#   infra/oidc/keycloak.sh fetch                      # once: download, build, seed the realm
#   infra/oidc/keycloak.sh run DIR HTTP_PORT MGMT_PORT  # foreground; stop it with SIGTERM
#
# `fetch` downloads org.keycloak:keycloak-quarkus-dist with Maven, runs `kc.sh build`
# (H2 file database, health endpoints) and starts it once with --import-realm
# (infra/oidc/paved-realm.json) to produce a seeded database, kept as a pristine copy.
# Everything lives under $PAVED_RUN_DIR/oidc (default .run/oidc), done once per machine.
# `run` starts an instance on 127.0.0.1 with its own copy of the pristine database in
# DIR, so concurrent instances and tests that rotate keys never share state.
# Keycloak 26 needs Java 21 or newer: $PAVED_KEYCLOAK_JAVA_HOME, else the newest JDK
# under /usr/lib/jvm that is >= 21.
set -euo pipefail

KC_VERSION="${PAVED_KEYCLOAK_VERSION:-26.5.6}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RUN_DIR="${PAVED_RUN_DIR:-$ROOT/.run}"
CACHE="$RUN_DIR/oidc"
DIST="$CACHE/keycloak-$KC_VERSION"
PRISTINE="$CACHE/pristine-$KC_VERSION"
REALM="$HERE/paved-realm.json"
ADMIN_USER="${PAVED_KEYCLOAK_ADMIN:-admin}"
# Build-time options: H2 file database, health checks.
BUILD_OPTS="--db=dev-file --health-enabled=true"
ADMIN_PASSWORD="${PAVED_KEYCLOAK_ADMIN_PASSWORD:-paved-local-admin}"

die() { echo "keycloak.sh: $*" >&2; exit 1; }

java_home() {
  if [ -n "${PAVED_KEYCLOAK_JAVA_HOME:-}" ]; then echo "$PAVED_KEYCLOAK_JAVA_HOME"; return; fi
  local best="" best_major=0 jh major
  for jh in /usr/lib/jvm/*/; do
    [ -x "$jh/bin/java" ] || continue
    major="$("$jh/bin/java" -XshowSettings:properties -version 2>&1 \
      | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
    if [ -n "$major" ] && [ "$major" -ge 21 ] && [ "$major" -gt "$best_major" ]; then
      best="${jh%/}"; best_major="$major"
    fi
  done
  [ -n "$best" ] || die "Keycloak $KC_VERSION needs Java >= 21; none under /usr/lib/jvm (set PAVED_KEYCLOAK_JAVA_HOME)"
  echo "$best"
}

db_url() { echo "jdbc:h2:file:$1/h2/keycloakdb;NON_KEYWORDS=VALUE"; }

# Start Keycloak in the foreground on 127.0.0.1 with the database under $1.
start() {
  local data="$1" http="$2" mgmt="$3"; shift 3
  JAVA_HOME="$(java_home)" \
  KC_BOOTSTRAP_ADMIN_USERNAME="$ADMIN_USER" KC_BOOTSTRAP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  JAVA_OPTS_KC_HEAP="-Xms64m -Xmx512m" \
  JAVA_OPTS_APPEND="--add-opens=java.base/java.lang=ALL-UNNAMED -Dquarkus.transaction-manager.object-store.directory=$data/transaction-logs" \
    exec "$DIST/bin/kc.sh" start --optimized \
      --db-url="$(db_url "$data")" \
      --http-enabled=true --http-host=127.0.0.1 --http-port="$http" \
      --http-management-port="$mgmt" --hostname-strict=false --cache=local \
      --log-level=WARN,org.keycloak.services:INFO "$@"
}

fetch() {
  if [ -f "$PRISTINE/.complete" ] && [ "$(cat "$DIST/.built" 2>/dev/null)" = "$BUILD_OPTS" ] \
     && [ "$(cat "$PRISTINE/.realm.sha256")" = "$(sha256sum "$REALM" | cut -d' ' -f1)" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is required to fetch Keycloak; run infra/local/system-deps.sh"
  mkdir -p "$CACHE"
  # Two test sessions on a fresh machine: one fetches and seeds, the other waits.
  exec 9>"$CACHE/.fetch.lock"
  flock 9
  if [ -f "$PRISTINE/.complete" ] && [ "$(cat "$DIST/.built" 2>/dev/null)" = "$BUILD_OPTS" ] \
     && [ "$(cat "$PRISTINE/.realm.sha256")" = "$(sha256sum "$REALM" | cut -d' ' -f1)" ]; then
    return 0
  fi
  if [ ! -x "$DIST/bin/kc.sh" ]; then
    echo "fetching Keycloak $KC_VERSION from Maven Central" >&2
    mvn -q -B dependency:copy \
      -Dartifact="org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz" \
      -DoutputDirectory="$CACHE" >&2
    rm -rf "$DIST"
    tar -xzf "$CACHE/keycloak-quarkus-dist-$KC_VERSION.tar.gz" -C "$CACHE"
    rm -f "$CACHE/keycloak-quarkus-dist-$KC_VERSION.tar.gz"
  fi
  if [ "$(cat "$DIST/.built" 2>/dev/null)" != "$BUILD_OPTS" ]; then
    echo "building Keycloak ($BUILD_OPTS)" >&2
    # shellcheck disable=SC2086
    JAVA_HOME="$(java_home)" "$DIST/bin/kc.sh" build $BUILD_OPTS >&2
    echo "$BUILD_OPTS" >"$DIST/.built"
    rm -rf "$PRISTINE"
  fi
  echo "seeding the paved realm (first start, about a minute)" >&2
  local seed="$CACHE/seed-$$" port mgmt pid
  rm -rf "$seed" && mkdir -p "$seed"
  read -r port mgmt < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
  mkdir -p "$DIST/data/import" && cp "$REALM" "$DIST/data/import/paved-realm.json"
  ( start "$seed" "$port" "$mgmt" --import-realm ) >"$CACHE/seed.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/realms/paved/.well-known/openid-configuration" 2>/dev/null; then
      break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$CACHE/seed.log" >&2; die "Keycloak exited while seeding"; }
    sleep 0.5
  done
  kill -TERM "$pid"; wait "$pid" || true
  rm -f "$DIST/data/import/paved-realm.json"
  [ -f "$seed/h2/keycloakdb.mv.db" ] || die "seeding left no database in $seed (see $CACHE/seed.log)"
  rm -rf "$PRISTINE" && mv "$seed" "$PRISTINE"
  sha256sum "$REALM" | cut -d' ' -f1 >"$PRISTINE/.realm.sha256"
  touch "$PRISTINE/.complete"
}

run() {
  [ $# -ge 3 ] || die "usage: keycloak.sh run DIR HTTP_PORT MGMT_PORT"
  local dir="$1" http="$2" mgmt="$3"
  [ -f "$PRISTINE/.complete" ] || die "Keycloak is not fetched yet: run infra/oidc/keycloak.sh fetch"
  mkdir -p "$dir"
  [ -f "$dir/h2/keycloakdb.mv.db" ] || cp -r "$PRISTINE/h2" "$dir/h2"
  start "$dir" "$http" "$mgmt"
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  java-home) java_home ;;
  *) die "usage: keycloak.sh fetch | run DIR HTTP_PORT MGMT_PORT | java-home" ;;
esac
