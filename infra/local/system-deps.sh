#!/usr/bin/env bash
# Install the system packages Paved needs when they are missing (Debian/Ubuntu):
# Java 17 + Maven (Apache Kafka from Maven Central), PostgreSQL 15, bubblewrap (the
# validation sandbox). Does nothing when everything is there.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v runuser >/dev/null || need+=(util-linux)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} — install them (sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
