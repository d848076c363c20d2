"""Smart-city semantics end to end: traffic lanes per interval, a parking lot, report on change."""
import json
import os
import time
from datetime import datetime, timezone

from harness import (EXAMPLE_PROFILES, Broker, Gateway, Sim, Subscriber, base_config, check,
                     main, validate_messages, wait_for)


def epoch_ms(ts):
    return int(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)


def test_traffic_lanes_lot_and_change(tmp):
    link = os.path.join(tmp.path, "ttyRS485")
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES,
                    "--rtu", link, "--slave", "1:ld120", "--slave", "2:ld120",
                    "--slave", "3:ld120", "--slave", "4:ld120:silent",
                    "--tcp", "0", "--slave", "1:traffic-counter", "--slave", "2:aqt530",
                    "--slave", "3:traffic-counter:restart=5"])
    port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    broker = Broker(tmp)
    buses = [{"id": "rs485", "type": "modbus-rtu", "device": link, "timeout_ms": 200,
              "backoff_max_s": 2},
             {"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = [{"id": "bay-%d" % u, "bus": "rs485", "driver": "modbus", "profile": "ld120",
                "unit_id": u, "interval_s": 0.5} for u in (1, 2, 3, 4)]
    sensors.append({"id": "lanes-1", "bus": "lan", "driver": "modbus",
                    "profile": "traffic-counter", "unit_id": 1, "interval_s": 2,
                    "aligned": True})
    sensors.append({"id": "lanes-restart", "bus": "lan", "driver": "modbus",
                    "profile": "traffic-counter", "unit_id": 3, "interval_s": 1,
                    "aligned": True})
    sensors.append({"id": "aq-slow", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                    "unit_id": 2, "interval_s": 0.25,
                    "report_on_change": {"deadband": 1e9, "max_silence_s": 3}})
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["profile_dirs"] = [EXAMPLE_PROFILES]
    cfg["lots"] = [{"id": "lot-1", "bays": ["bay-1", "bay-2", "bay-3", "bay-4"],
                    "max_interval_s": 5}]
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, cfg).start()
    try:
        time.sleep(13)
        check(gw.stop() == 0, "clean stop")
        time.sleep(0.5)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    counts = validate_messages(tmp, sub.received())
    readings = sub.readings()

    # Traffic: one reading per lane per aligned 2 s interval, never the baseline poll.
    traffic = [r for _, r, _ in readings if r["sensor"] == "lanes-1"]
    check(len(traffic) >= 6, "traffic readings: %d" % len(traffic))
    lanes = sorted({r["values"]["laneId"] for r in traffic})
    check(lanes == [1, 2], "one reading per lane: %r" % lanes)
    for r in traffic:
        check(r["interval_s"] == 2, "interval_s %r" % r.get("interval_s"))
        check(epoch_ms(r["ts"]) % 2000 == 0, "ts %s is not on a 2 s boundary" % r["ts"])
        # The simulator counts 1 to 5 vehicles/s per lane, with jitter up to 1.5 times.
        check(0 <= r["values"]["intensity"] <= 20, "intensity %r" % r["values"])
        check(0 <= r["values"]["occupancy"] <= 1, "occupancy %r" % r["values"])
        check(set(r["units"]) == {"intensity", "occupancy", "averageVehicleSpeed"},
              "units %r" % r["units"])

    # A counter whose device restarts every 5 s: flagged, never a huge count.
    restart = [r for _, r, _ in readings if r["sensor"] == "lanes-restart"]
    resets = [r for r in restart if r["quality"] == "counter-reset"]
    check(len(restart) >= 12, "readings of the restarting counter: %d" % len(restart))
    check(resets, "no restart flagged in %r" % [r["quality"] for r in restart])
    check(max(r["values"]["intensity"] for r in restart) <= 12,
          "a restart gave a huge count: %r" % max(r["values"]["intensity"] for r in restart))

    # The lot: four bays, one silent; published on change and every 5 s.
    lot = [r for _, r, _ in readings if r["sensor"] == "lot-1"]
    check(len(lot) >= 2, "lot readings: %d" % len(lot))
    last = lot[-1]["values"]
    check(last["totalSpotNumber"] == 4, "total %r" % last)
    check(last["availableSpotNumber"] + last["occupiedSpotNumber"] == 3,
          "the silent bay counts as neither: %r" % last)
    stamps = [epoch_ms(r["ts"]) for r in lot]
    check(max(b - a for a, b in zip(stamps, stamps[1:])) <= 6500 if len(stamps) > 1 else True,
          "a lot reading at least every 5 s: %r" % stamps)
    silent = [r for _, r, _ in readings if r["sensor"] == "bay-4"]
    check(silent and all(r["values"]["status"] == "unknown" for r in silent),
          "the silent bay is reported unknown: %r" % silent[:2])
    check(silent[0]["quality"] == "no-answer", "quality %r" % silent[0]["quality"])

    # Report on change: polled 4 times a second, published every 3 s at most.
    slow = [epoch_ms(r["ts"]) for _, r, _ in readings if r["sensor"] == "aq-slow"]
    check(2 <= len(slow) <= 6, "report on change held back the rest: %d readings" % len(slow))
    check(min(b - a for a, b in zip(slow, slow[1:])) >= 2900, "gaps %r" % slow)
    print("  traffic %d, restarting counter %d (%d flagged counter-reset), lot %d, "
          "bay-4 unknown %d, aq-slow %d, validated %r"
          % (len(traffic), len(restart), len(resets), len(lot), len(silent), len(slow), counts))


if __name__ == "__main__":
    main([test_traffic_lanes_lot_and_change])
