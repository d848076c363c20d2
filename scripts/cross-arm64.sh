#!/bin/bash
# Cross-builds citygate for arm64 into build-arm64/ (or the folder given as
# $1) with Debian's cross toolchain and arm64 -dev packages (multiarch), then
# runs the cmocka unit tests (ctest's unit/* entries) under qemu-user.
# Installs what is missing first (scripts/setup-arm64.sh) unless --no-setup
# comes first, as it does in the ctest entry arm64/unit, which must not
# install anything. Prints "skipped: ..." and exits 0 only where qemu cannot
# run an arm64 program.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
if [[ ${1:-} == --no-setup ]]; then
	shift
else
	bash "$src/scripts/setup-arm64.sh"
fi
dir=${1:-build-arm64}

EXEC_TESTS='^unit/test_sim$'
# qemu-user does not show MADV_DONTDUMP in the emulated /proc/self/smaps
# (VmFlags lacks "dd"), so the test that core dumps leave the password out,
# which reads exactly that, cannot run under it; it runs natively.
EMULATION_BLIND='^unit/test_secret$'

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int main(void) { return 0; }\n' >"$probe/probe.c"
aarch64-linux-gnu-gcc -o "$probe/probe" "$probe/probe.c"
if ! qemu-aarch64 "$probe/probe" 2>"$probe/err"; then
	echo "skipped: qemu-aarch64 cannot run arm64 programs here: $(head -c 300 "$probe/err")"
	exit 0
fi
exclude=(-E "$EMULATION_BLIND")
if ! "$probe/probe" 2>/dev/null; then
	echo "cross-arm64: no binfmt_misc for arm64 here: leaving out the tests that" \
		"start other arm64 programs ($EXEC_TESTS)"
	exclude=(-E "$EMULATION_BLIND|$EXEC_TESTS")
fi

started=$SECONDS
cmake -S "$src" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-arm64.cmake" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON -DCG_WERROR=ON >/dev/null
cmake --build "$dir" -j"$(nproc)"
file "$dir/citygate" 2>/dev/null | grep -q 'ARM aarch64' ||
	{ echo "cross-arm64: $dir/citygate is not an arm64 program" >&2; exit 1; }
(cd "$dir" && ctest --output-on-failure --no-tests=error -R "^unit/" "${exclude[@]}" -j"$(nproc)" \
	--timeout 600)
echo "cross-arm64: built and tested in $((SECONDS - started)) s"
