"""Vendor-frame sensors end to end: citygate-sim --serial (PMS5003, SDS011, A02YYUW on ptys,
with noise and bad checksums) -> citygate -> mosquitto."""
import json
import os
import time

from harness import (Broker, Gateway, Sim, Subscriber, base_config, check, main, seq_report,
                     validate_messages, wait_for)

PARTICLES = ("particles03", "particles05", "particles10", "particles25", "particles50",
             "particles100")


def serial_bus(bus_id, link):
    return {"id": bus_id, "type": "serial", "device": link, "baud": 9600, "timeout_ms": 300}


def test_serial_readings_arrive(tmp):
    """All three devices on their own ptys, each with noise bytes and bad checksums."""
    links = {name: os.path.join(tmp.path, "tty" + name) for name in ("PM", "SDS", "BAY")}
    sim = Sim(tmp, ["--seed", "7",
                    "--serial", links["PM"], "--device", "pms5003:noise=30,badsum=5",
                    "--serial", links["SDS"], "--device", "sds011:noise=30,badsum=5",
                    "--serial", links["BAY"], "--device", "a02yyuw:noise=50,badsum=20,period=2"])
    check([e[0] for e in sim.endpoints] == ["serial"] * 3, "endpoints %r" % sim.endpoints)
    check([e[1] for e in sim.endpoints] == [links["PM"], links["SDS"], links["BAY"]],
          "links %r" % sim.endpoints)
    broker = Broker(tmp)
    buses = [serial_bus("uart-pm", links["PM"]), serial_bus("uart-sds", links["SDS"]),
             serial_bus("uart-bay", links["BAY"])]
    sensors = [{"id": "pm-001", "bus": "uart-pm", "driver": "pms5003", "interval_s": 0.5,
                "warmup_s": 2},
               {"id": "pm-002", "bus": "uart-sds", "driver": "sds011", "interval_s": 0.5,
                "warmup_s": 0},
               {"id": "bay-001", "bus": "uart-bay", "driver": "a02yyuw", "interval_s": 0.25,
                "occupied_below_mm": 1500, "hysteresis_mm": 200}]
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors, health_interval_s=1)).start()

    def bay_states():
        return {r["values"]["status"] for _, r, _ in sub.readings() if r["sensor"] == "bay-001"}

    def pm_qualities():
        return {r["quality"] for _, r, _ in sub.readings() if r["sensor"] == "pm-001"}

    try:
        wait_for(lambda: {r["sensor"] for _, r, _ in sub.readings()} >=
                 {"pm-001", "pm-002", "bay-001"}, 30, "readings from every sensor")
        # The simulated car comes and goes every 2 s; the PMS5003 warms up for 2 s.
        wait_for(lambda: bay_states() == {"free", "occupied"}, 30, "the bay both free and occupied")
        wait_for(lambda: pm_qualities() == {"warming-up", "ok"}, 30,
                 "PMS5003 readings warming up, then ok")
        wait_for(lambda: len(sub.readings()) >= 40, 30, "40 readings")
        check(gw.stop() == 0, "clean stop")
        time.sleep(0.5)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    counts = validate_messages(tmp, sub.received())
    check({"reading-air-quality", "reading-parking", "status", "health"} <= set(counts),
          "validated %r" % counts)
    # The noise and bad checksums the simulator injected are counted per bus.
    health = json.loads(sub.received("/health")[-1][1])
    noisy = {b["id"]: (b["noise_bytes"], b["bad_frames"]) for b in health["buses"]}
    check(all(n > 0 for n, _ in noisy.values()), "noise counted per bus: %r" % noisy)
    check(sum(f for _, f in noisy.values()) > 0, "bad checksums counted: %r" % noisy)
    print("  noise bytes and bad frames per bus: %r" % noisy)
    readings = sub.readings()
    for topic, r, _ in readings:
        check(topic == "city/test/gw-test-1/%s/%s" % (r["kind"], r["sensor"]),
              "topic %s does not match its reading" % topic)
        v, u = r["values"], r["units"]
        if r["sensor"] == "pm-001":
            check(r["kind"] == "air-quality", "pms5003 kind %r" % r["kind"])
            check(set(v) == {"pm1", "pm25", "pm10"} | set(PARTICLES), "pms5003 values %r" % v)
            check(all(u[k] == "ug/m3" for k in ("pm1", "pm25", "pm10")), "pms5003 units %r" % u)
            check(all(u[k] == "count" for k in PARTICLES), "pms5003 count units %r" % u)
            check(2 <= v["pm25"] <= 30 and v["pm1"] <= v["pm25"] <= v["pm10"],
                  "pms5003 values outside the simulated range: %r" % v)
            check(r["quality"] in ("ok", "warming-up"), "pms5003 quality %r" % r["quality"])
        elif r["sensor"] == "pm-002":
            check(r["kind"] == "air-quality", "sds011 kind %r" % r["kind"])
            check(set(v) == {"pm25", "pm10"} and u == {"pm25": "ug/m3", "pm10": "ug/m3"},
                  "sds011 values %r units %r" % (v, u))
            check(2 <= v["pm25"] <= 30 and v["pm25"] < v["pm10"], "sds011 values %r" % v)
            check(r["quality"] == "ok", "sds011 quality %r (warmup_s 0)" % r["quality"])
        else:
            check(r["kind"] == "parking", "a02yyuw kind %r" % r["kind"])
            check(set(v) == {"status", "distance"} and u == {"distance": "m"},
                  "a02yyuw values %r units %r" % (v, u))
            # Noise never forges a frame: the distance is the car's or the floor's.
            near = 0.85 <= v["distance"] <= 0.95
            far = 2.55 <= v["distance"] <= 2.65
            check(near or far, "a02yyuw distance %r" % v["distance"])
            check(v["status"] == ("occupied" if near else "free"), "a02yyuw status %r" % v)
            check(r["quality"] == "ok", "a02yyuw quality %r" % r["quality"])
    # The warm-up comes first, once.
    q = [r["quality"] for _, r, _ in readings if r["sensor"] == "pm-001"]
    first_ok = q.index("ok")
    check(all(x == "warming-up" for x in q[:first_ok]) and all(x == "ok" for x in q[first_ok:]),
          "PMS5003 qualities %r" % q)
    unique, missing, dups = seq_report(readings)
    check(not missing and dups == 0, "seq missing %s, %d duplicates" % (missing[:10], dups))


def test_serial_faults_and_recovery(tmp):
    """An SDS011 silent for its first seconds, a PMS5003 that power-cycles into
    active mode, and only bad checksums from a bay sensor: failures are counted
    and logged, and readings come back."""
    links = {name: os.path.join(tmp.path, "tty" + name) for name in ("PM", "SDS", "BAY")}
    sim = Sim(tmp, ["--serial", links["PM"], "--device", "pms5003:reboot=9",
                    "--serial", links["SDS"], "--device", "sds011:silent,until=3",
                    "--serial", links["BAY"], "--device", "a02yyuw:badsum=100"])
    broker = Broker(tmp)
    buses = [dict(serial_bus("uart-pm", links["PM"]), backoff_max_s=2),
             dict(serial_bus("uart-sds", links["SDS"]), backoff_max_s=2),
             dict(serial_bus("uart-bay", links["BAY"]), backoff_max_s=2)]
    # 4 s between PMS5003 polls: the frames it streams after a power cycle
    # (one a second) pile up, which is how the driver tells it restarted.
    sensors = [{"id": "pm-001", "bus": "uart-pm", "driver": "pms5003", "interval_s": 4,
                "warmup_s": 1},
               {"id": "pm-002", "bus": "uart-sds", "driver": "sds011", "interval_s": 0.5,
                "warmup_s": 0},
               {"id": "bay-001", "bus": "uart-bay", "driver": "a02yyuw", "interval_s": 0.5}]
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors, health_interval_s=1)).start()
    try:
        wait_for(lambda: any(r["sensor"] == "pm-002" for _, r, _ in sub.readings()), 20,
                 "SDS011 readings once it speaks")

        def pm_qualities():
            return [r["quality"] for _, r, _ in sub.readings() if r["sensor"] == "pm-001"]

        # warming-up (start), ok, ..., warming-up again after the power cycle.
        wait_for(lambda: "warming-up" in pm_qualities()[pm_qualities().index("ok"):]
                 if "ok" in pm_qualities() else False, 30,
                 "a PMS5003 warm-up after its power cycle")

        def bay_crc():
            for _, p, _ in reversed(sub.received("/health")):
                for b in json.loads(p)["buses"]:
                    for s in b["sensors"]:
                        if s["id"] == "bay-001" and s["crc_errors"] >= 2:
                            return s
            return None
        bay = wait_for(bay_crc, 20, "CRC errors of the bay sensor in health")
        check(bay["ok"] == 0, "a sensor sending only bad checksums made readings: %r" % bay)
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    log = gw.log_text()
    check("sensor pm-002 on bus uart-sds: timed out" in log, "the silence is logged")
    check("sensor pm-002 on bus uart-sds: answering again" in log, "the recovery is logged")
    check("pms5003 pm-001: sensor sends frames unasked" in log, "the power cycle is noticed")
    check(not any(r["sensor"] == "bay-001" for _, r, _ in sub.readings()),
          "no reading from frames with bad checksums")


if __name__ == "__main__":
    main([test_serial_readings_arrive, test_serial_faults_and_recovery])
