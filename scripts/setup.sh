#!/bin/bash
# Installs what citygate needs to build, run its demo and run its tests on
# Debian 12 (as root). Skips apt-get when everything is already there.
set -euo pipefail

PACKAGES=(build-essential cmake pkg-config clang libclang-rt-14-dev
	libpaho-mqtt-dev libssl-dev libsqlite3-dev libcjson-dev libcmocka-dev libmodbus-dev
	libsystemd-dev mosquitto mosquitto-clients python3 python3-pyld openssl sqlite3 systemd
	strace valgrind dpkg-dev file binutils procps)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian packages would not replace a Node.js that is already installed.
if ! command -v npm >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# ajv-cli validates payloads against schemas/ in the tests.
if ! command -v ajv >/dev/null; then
	npm install -g --no-audit --no-fund ajv-cli@5 ajv-formats@2 >/dev/null
fi
