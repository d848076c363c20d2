#!/bin/bash
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c) longer than the test
# suite does: SECONDS each (default 600), from the seed corpus in
# tests/fuzz/corpus/NAME/ plus what earlier runs found.
#
#   bash scripts/fuzz.sh            # 10 minutes per target
#   bash scripts/fuzz.sh 60         # 1 minute per target
#   bash scripts/fuzz.sh 3600 config profile    # only these targets
#
# It builds into build-fuzz/ with clang (-DCG_FUZZ=ON). Inputs found go to
# build-fuzz/tests/fuzz/NAME/corpus/ and crashes to
# build-fuzz/tests/fuzz/NAME/artifacts/, never into the source tree; replay
# a crash with `build-fuzz/tests/fuzz_NAME FILE` (CG_FUZZ_BUILD=DIR builds
# elsewhere than build-fuzz/). Exits non-zero if any
# target crashed or reported a sanitizer error. Each target's line
# "fuzz NAME: N runs in S s, exit R" is what docs/reliability.md quotes.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
build=${CG_FUZZ_BUILD:-build-fuzz}

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCG_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1

if (($#)); then
	names=("$@")
else
	names=()
	for f in tests/fuzz/fuzz_*.c; do
		n=${f##*/fuzz_}
		names+=("${n%.c}")
	done
fi
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null || exit 1

failed=0
for n in "${names[@]}"; do
	work=$build/tests/fuzz/$n
	mkdir -p "$work/corpus" "$work/artifacts"
	log=$work/fuzz.log
	echo "== fuzz $n for $seconds s (log: $log)"
	"$build/tests/fuzz_$n" -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/corpus" "tests/fuzz/corpus/$n" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	echo "fuzz $n: ${runs:-?} runs in $seconds s, exit $rc"
	if ((rc != 0)); then
		failed=1
		grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5
	fi
done
exit $failed
