"""Readings flow end to end: citygate-sim (RTU over a pty and TCP) -> citygate -> mosquitto."""
import json
import os
import re
import time

from harness import (CITYGATE, Broker, Gateway, Sim, Subscriber, base_config, check, main, run,
                     seq_report, validate_messages, wait_for)

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def street(tmp):
    """An RTU line with an AQT530 and an LD120 bay, and a TCP AQT530."""
    link = os.path.join(tmp.path, "ttyRS485")
    sim = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120",
                    "--tcp", "0", "--slave", "1:aqt530"])
    tcp_port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    buses = [{"id": "rs485-1", "type": "modbus-rtu", "device": link, "baud": 9600,
              "timeout_ms": 300},
             {"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": tcp_port,
              "timeout_ms": 300}]
    sensors = [{"id": "aq-001", "bus": "rs485-1", "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 0.5},
               {"id": "bay-001", "bus": "rs485-1", "driver": "modbus", "profile": "ld120",
                "unit_id": 2, "interval_s": 0.5},
               {"id": "aq-002", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 0.25}]
    return sim, buses, sensors


def test_readings_arrive(tmp):
    broker = Broker(tmp)
    sim, buses, sensors = street(tmp)
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors)).start()
    try:
        wait_for(lambda: {r["sensor"] for _, r, _ in sub.readings()} >=
                 {"aq-001", "bay-001", "aq-002"} and len(sub.readings()) >= 20,
                 30, "readings from every sensor")
        wait_for(lambda: sub.received("/health"), 10, "a health message")
        rc = gw.stop()
        check(rc == 0, "citygate exited with %d on SIGTERM" % rc)
        time.sleep(0.5)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    counts = validate_messages(tmp, sub.received())
    check(set(counts) == {"reading-air-quality", "reading-parking", "status", "health",
                          "sensor-state"}, "validated %r" % counts)
    readings = sub.readings()
    for topic, r, _ in readings:
        check(topic == "city/test/gw-test-1/%s/%s" % (r["kind"], r["sensor"]),
              "topic %s does not match its reading" % topic)
        check(set(r) == {"gateway", "sensor", "kind", "seq", "ts", "values", "units", "quality"},
              "unexpected keys %s" % sorted(r))
        check(r["gateway"] == "gw-test-1", "gateway id")
        check(TS.match(r["ts"]), "ts %r is not RFC 3339 UTC with milliseconds" % r["ts"])
        if r["kind"] == "air-quality":
            v, u = r["values"], r["units"]
            check(5 <= v["pm25"] <= 35, "pm25 %r outside the simulated range" % v["pm25"])
            check(-5 <= v["temperature"] <= 30, "temperature %r" % v["temperature"])
            check(990 <= v["pressure"] <= 1030, "pressure %r" % v["pressure"])
            check(u["pm25"] == "ug/m3" and u["temperature"] == "Cel" and u["no2"] == "ppb"
                  and u["relativeHumidity"] == "%RH" and u["pressure"] == "hPa", "units %r" % u)
        else:
            check(r["kind"] == "parking", "kind %r" % r["kind"])
            check(r["values"]["status"] in ("free", "occupied"), "bay status %r" % r["values"])
    unique, missing, dups = seq_report(readings)
    check(not missing, "seq missing: %s" % missing[:20])
    check(dups == 0, "%d duplicates without any outage" % dups)
    # Each sensor's readings arrive in the order they were made.
    for sensor in ("aq-001", "bay-001", "aq-002"):
        seqs = [r["seq"] for _, r, _ in readings if r["sensor"] == sensor]
        check(seqs == sorted(seqs), "%s readings out of order" % sensor)
        stamps = [r["ts"] for _, r, _ in readings if r["sensor"] == sensor]
        check(stamps == sorted(stamps), "%s timestamps go backwards" % sensor)

    status = [json.loads(p) for _, p, _ in sub.received("/status")]
    check(status and status[0]["state"] == "online", "first status %r" % status[:1])
    check(status[-1]["state"] == "offline", "clean stop publishes offline, got %r" % status[-1:])
    health = json.loads(sub.received("/health")[-1][1])
    sensors = {s["id"]: s for b in health["buses"] for s in b["sensors"]}
    check(set(sensors) == {"aq-001", "bay-001", "aq-002"}, "health lists every sensor")
    check(all(s["ok"] > 0 and s["timeouts"] == 0 for s in sensors.values()),
          "health counters %r" % sensors)


def test_seq_survives_restart(tmp):
    broker = Broker(tmp)
    sim, buses, sensors = street(tmp)
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    cfg = base_config(tmp, broker, buses, sensors)
    try:
        gw = Gateway(tmp, cfg).start()
        wait_for(lambda: len(sub.readings()) >= 10, 30, "first readings")
        check(gw.stop() == 0, "clean stop")
        first = max(r["seq"] for _, r, _ in sub.readings())
        gw = Gateway(tmp, cfg).start()
        wait_for(lambda: max(r["seq"] for _, r, _ in sub.readings()) > first + 10, 30,
                 "readings after the restart")
        check(gw.stop() == 0, "clean stop")
        time.sleep(0.5)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    unique, missing, dups = seq_report(sub.readings())
    check(not missing, "seq missing across a restart: %s" % missing[:20])


def test_rtu_over_tcp(tmp):
    """An RS-485 line behind an Ethernet serial server: citygate-sim serves RTU frames
    over TCP; the readings arrive, --once reads them, and a slave that does not exist
    on that line times out like one on a local RS-485 port."""
    broker = Broker(tmp)
    sim = Sim(tmp, ["--rtu-tcp", "0", "--slave", "3:aqt530", "--slave", "4:ld120",
                    "--slave", "5:aqt530:slow=500"])
    port = int(sim.endpoints[0][2])
    check(sim.endpoints[0][0] == "rtu-tcp", "an RTU-over-TCP endpoint: %r" % sim.endpoints)
    # A host name, not an address: serial servers are often known by name.
    buses = [{"id": "cabinet", "type": "modbus-rtu-tcp", "host": "localhost", "port": port,
              "timeout_ms": 300}]
    sensors = [{"id": "aq-3", "bus": "cabinet", "driver": "modbus", "profile": "aqt530",
                "unit_id": 3, "interval_s": 0.3},
               {"id": "bay-4", "bus": "cabinet", "driver": "modbus", "profile": "ld120",
                "unit_id": 4, "interval_s": 0.3}]
    sub = Subscriber(broker, "city/test/#")
    cfg = base_config(tmp, broker, buses, sensors)
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: {"aq-3", "bay-4"} <= {r["sensor"] for _, r, _ in sub.readings()}, 20,
                 "readings from both slaves behind the serial server")
        check(gw.stop() == 0, "clean stop")
        unique, missing, dups = seq_report(sub.readings())
        check(not missing, "no gap in seq: %r" % missing[:10])
        aq = [r for _, r, _ in sub.readings() if r["sensor"] == "aq-3"]
        check(all(5 <= r["values"]["pm25"] <= 35 and r["quality"] == "ok" for r in aq),
              "plausible AQT530 readings: %r" % aq[:2])
        # A late answer (after the 300 ms timeout) must not pass for the next one.
        sensors[:0] = [{"id": "late", "bus": "cabinet", "driver": "modbus",
                        "profile": "aqt530", "unit_id": 5}]
        sensors.append({"id": "ghost", "bus": "cabinet", "driver": "modbus", "profile": "aqt530",
                        "unit_id": 9})
        path = tmp.file("once.json", json.dumps(base_config(tmp, broker, buses, sensors)))
        r = run([CITYGATE, "--once", "-c", path])
        # The late answer lands in a later request's wait, as on a real line:
        # that request fails (not from the requested slave), no reading is wrong.
        check(r.returncode == 3 and "late: timed out" in r.stderr and "ghost: " in r.stderr,
              "a late and a missing slave fail: exit %d %r" % (r.returncode, r.stderr))
        check(sorted(json.loads(l)["sensor"] for l in r.stdout.splitlines()) == ["aq-3", "bay-4"],
              "the others answer: %r" % r.stdout)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()


if __name__ == "__main__":
    main([test_readings_arrive, test_seq_survives_restart, test_rtu_over_tcp])
