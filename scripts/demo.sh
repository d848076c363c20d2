#!/bin/bash
# Sets up and runs the demo: mosquitto on 127.0.0.1:18830, citygate-sim with a
# street's worth of sensors, the gateway on examples/street.json, and a
# subscriber printing every reading as it arrives. Ctrl-C stops it all;
# DEMO_SECONDS=N stops it after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build >/dev/null

work=$(mktemp -d /tmp/citygate-demo.XXXXXX)
chmod 755 "$work"
# The config's relative paths (store, serial line, its profile_dirs) resolve
# next to the copy: the example profiles (traffic-counter) go beside it.
cp examples/street.json "$work/street.json"
cp -r examples/profiles "$work/profiles"
pids=()
cleanup() {
	# Stop in reverse order: the gateway first, so it can still say goodbye to the broker.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; sleep 0.2; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

printf 'listener 18830 127.0.0.1\nallow_anonymous true\nuser root\n' >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
pids+=($!)

build/citygate-sim --profile-dir examples/profiles \
	--rtu "$work/street-rs485.pty" --slave 1:aqt530 --slave 11:ld120 \
	--slave 12:ld120 --slave 13:ld120 \
	--tcp 15020 --slave 1:aqt530 --slave 2:traffic-counter >"$work/sim.out" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$work/sim.out" || { echo "citygate-sim did not start:"; cat "$work/sim.log"; exit 1; }

mosquitto_sub -h 127.0.0.1 -p 18830 -t 'city/gangneung/#' -v &
pids+=($!)
sleep 0.5
echo "== gateway log below, readings as they arrive (Ctrl-C to stop)"
build/citygate -c "$work/street.json" &
pids+=($!)
if [[ -n "${DEMO_SECONDS:-}" ]]; then
	sleep "$DEMO_SECONDS"
else
	wait "${pids[-1]}"
fi
