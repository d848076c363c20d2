#!/bin/bash
# Sets up and runs the whole test suite: unit and integration tests on a
# normal build, then all of them again on an ASan + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== build"
bash scripts/build.sh build
echo "== tests"
(cd build && ctest --output-on-failure -j2 --timeout 600)

echo "== sanitizer build (ASan + UBSan)"
bash scripts/build.sh build-asan -DCG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== tests under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2 --timeout 900)
