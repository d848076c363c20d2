#!/bin/bash
# Cross-builds citygate for arm64 into build-arm64/ (or the folder given as
# $1) with Debian's cross toolchain and arm64 -dev packages (multiarch), then
# runs the cmocka unit tests (ctest's unit/* entries) under qemu-user.
# Installs what is missing first (as root; nothing when all is there). Prints
# "skipped: ..." and exits 0 only where qemu cannot run an arm64 program.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
dir=${1:-build-arm64}

HOST_PACKAGES=(crossbuild-essential-arm64 qemu-user cmake pkg-config file)
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

# qemu-user needs no binfmt_misc here (ctest calls it directly), only a
# kernel and seccomp policy that let it run; check on a trivial program.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int main(void) { return 0; }\n' >"$probe/probe.c"
aarch64-linux-gnu-gcc -o "$probe/probe" "$probe/probe.c"
if ! qemu-aarch64 -L /usr/aarch64-linux-gnu "$probe/probe" 2>"$probe/err"; then
	echo "skipped: qemu-aarch64 cannot run arm64 programs here: $(head -c 300 "$probe/err")"
	exit 0
fi

started=$SECONDS
cmake -S "$src" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-arm64.cmake" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCG_TESTS=ON >/dev/null
cmake --build "$dir" -j"$(nproc)"
file "$dir/citygate" 2>/dev/null | grep -q 'ARM aarch64' ||
	{ echo "cross-arm64: $dir/citygate is not an arm64 program" >&2; exit 1; }
(cd "$dir" && ctest --output-on-failure --no-tests=error -R "^unit/" -j"$(nproc)" --timeout 600)
echo "cross-arm64: built and tested in $((SECONDS - started)) s"
