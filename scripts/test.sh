#!/bin/bash
# Sets up and runs the whole test suite: unit and integration tests on a
# normal build (plus the arm64 unit tests under qemu), then all of them again
# on an ASan + UBSan build, then every fuzzer for a bounded number of runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The suite also cross-builds for arm64 and runs the unit tests under
# qemu-user (ctest's arm64/unit, once; not again in the sanitizer pass).
bash scripts/setup-arm64.sh

echo "== build"
bash scripts/build.sh build -DCG_WERROR=ON
echo "== tests"
(cd build && ctest --output-on-failure -j2 --timeout 600)

echo "== sanitizer build (ASan + UBSan)"
CG_ARM64=0 bash scripts/build.sh build-asan -DCG_WERROR=ON -DCG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== tests under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2 --timeout 900)

echo "== fuzzers (libFuzzer, a bounded number of runs each; scripts/fuzz.sh runs them longer)"
CG_ARM64=0 bash scripts/build.sh build-fuzz -DCG_WERROR=ON -DCMAKE_C_COMPILER=clang -DCG_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-fuzz && ctest --output-on-failure -j2 -R '^fuzz/')
