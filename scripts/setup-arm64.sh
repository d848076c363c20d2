#!/bin/bash
# Installs what cross-building citygate for arm64 and running its unit tests
# under qemu-user needs: Debian's cross toolchain, the arm64 -dev packages
# (multiarch) and qemu's binfmt_misc handler (as root; nothing when all is
# there). scripts/cross-arm64.sh and scripts/test.sh call it.
set -euo pipefail

HOST_PACKAGES=(crossbuild-essential-arm64 qemu-user qemu-user-binfmt cmake pkg-config file)
ARM64_PACKAGES=(libpaho-mqtt-dev:arm64 libsqlite3-dev:arm64 libcjson-dev:arm64
	libcmocka-dev:arm64 libmodbus-dev:arm64 libsystemd-dev:arm64 libssl-dev:arm64)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for p in "${HOST_PACKAGES[@]}" "${ARM64_PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "cross-arm64: installing ${missing[*]}"
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Unit tests that start another arm64 program (unit/test_sim starts
# citygate-sim) need the kernel to run arm64 programs itself: binfmt_misc with
# qemu's handler. qemu-user-binfmt registers it through systemd; where systemd
# is not running, mount binfmt_misc and register it here.
binfmt=/proc/sys/fs/binfmt_misc
if [[ ! -e $binfmt/register ]]; then
	mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
fi
if [[ -e $binfmt/register && ! -e $binfmt/qemu-aarch64 ]]; then
	/lib/systemd/systemd-binfmt qemu-aarch64.conf 2>/dev/null || true
fi
