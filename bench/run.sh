#!/usr/bin/env bash
# Builds citygate with its benchmarks and runs them all (docs/benchmarks.md):
# each figure against a baseline measured in the same run, median and spread.
# QUICK=1 shortens every run; REPS=N sets the repetitions (at least 3);
# BUILD_DIR=DIR builds there (default build-bench/); any arguments go to
# bench/bench.py (--only 1,4 runs some sections, --json FILE keeps the figures).
# Benchmarks never fail: they print "target met" or "NOT MET".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}

# What the build and the tests need, then the peer: collectd with its modbus and
# mqtt plugins (Debian's collectd-core). A freshly installed collectd must not
# run as a service beside the one under test.
bash "$ROOT/scripts/setup.sh"
if [ ! -e /usr/lib/collectd/modbus.so ] || [ ! -e /usr/lib/collectd/mqtt.so ]; then
	echo "run.sh: installing collectd-core"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends collectd-core >/dev/null
	if command -v systemctl >/dev/null && systemctl is-active --quiet collectd 2>/dev/null; then
		systemctl stop collectd
	fi
fi

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCG_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
exec python3 "$ROOT/bench/bench.py" --build "$BUILD" "$@"
