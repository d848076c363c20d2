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
EXEC_TESTS='^unit/test_sim$'

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int main(void) { return 0; }\n' >"$probe/probe.c"
aarch64-linux-gnu-gcc -o "$probe/probe" "$probe/probe.c"
if ! qemu-aarch64 "$probe/probe" 2>"$probe/err"; then
	echo "skipped: qemu-aarch64 cannot run arm64 programs here: $(head -c 300 "$probe/err")"
	exit 0
fi
exclude=()
if ! "$probe/probe" 2>/dev/null; then
	echo "cross-arm64: no binfmt_misc for arm64 here: leaving out the tests that" \
		"start other arm64 programs ($EXEC_TESTS)"
	exclude=(-E "$EXEC_TESTS")
fi

started=$SECONDS
cmake -S "$src" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-arm64.cmake" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCG_TESTS=ON >/dev/null
cmake --build "$dir" -j"$(nproc)"
file "$dir/citygate" 2>/dev/null | grep -q 'ARM aarch64' ||
	{ echo "cross-arm64: $dir/citygate is not an arm64 program" >&2; exit 1; }
(cd "$dir" && ctest --output-on-failure --no-tests=error -R "^unit/" "${exclude[@]}" -j"$(nproc)" \
	--timeout 600)
echo "cross-arm64: built and tested in $((SECONDS - started)) s"
