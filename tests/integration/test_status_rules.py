"""Status rules end to end: citygate-sim forces a CO2 sensor's meter-status register (or its
concentration) to each rule's value; the readings mosquitto delivers carry each rule's quality,
the worst when several match, and the status register only when the profile publishes it. The
same for the shipped gmp252 profile's two status registers."""
import json
import os

from harness import (CITYGATE, SRC, Broker, Gateway, Sim, Subscriber, base_config, check, main,
                     run, validate_messages, wait_for)

FIXTURE = os.path.abspath(os.path.join(SRC, "tests", "fixtures", "profiles", "co2-status.json"))

# unit: (sim fault, expected quality, what it shows). The rules are those of the fixture.
CASES = {
    1: (None, "ok", "status 0: the value rule that only names a state"),
    2: ("force=meterStatus:0x1", "sensor-fault", "mask 0x1"),
    3: ("force=meterStatus:0x2", "maintenance", "mask 0x2"),
    4: ("force=meterStatus:0x4", "warming-up", "mask 0x4"),
    5: ("force=meterStatus:0x20", "stale", "mask 0x30 with value 0x20"),
    6: ("force=meterStatus:0x30", "ok", "mask 0x30 with another value: no match"),
    7: ("force=meterStatus:64", "out-of-range", "value 64"),
    8: ("force=meterStatus:0x3", "sensor-fault", "two bits: sensor-fault beats maintenance"),
    9: ("force=meterStatus:0x6", "maintenance", "two bits: maintenance beats warming-up"),
    10: ("force=co2:40000", "sensor-fault", "range rule on the raw concentration"),
}


def street(tmp, profile, cases):
    """citygate-sim on TCP with one slave per case, and one sensor per slave."""
    args = ["--tcp", "0"]
    for unit, (fault, _, _) in sorted(cases.items()):
        args += ["--slave", "%d:%s%s" % (unit, profile, ":" + fault if fault else "")]
    sim = Sim(tmp, args)
    port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": 500}]
    sensors = [{"id": "co2-%d" % unit, "bus": "lan", "driver": "modbus", "profile": profile,
                "unit_id": unit, "interval_s": 0.5} for unit in sorted(cases)]
    return sim, buses, sensors


def collect(tmp, profile, cases, per_sensor=3):
    """Runs the gateway until every sensor has per_sensor readings; returns them by sensor,
    after validating every message against its schema."""
    broker = Broker(tmp)
    sim, buses, sensors = street(tmp, profile, cases)
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors)).start()
    ids = {s["id"] for s in sensors}

    def by_sensor():
        out = {}
        for _, r, _ in sub.readings():
            out.setdefault(r["sensor"], []).append(r)
        return out
    try:
        wait_for(lambda: all(len(by_sensor().get(i, [])) >= per_sensor for i in ids), 60,
                 "%d readings from each of %d sensors" % (per_sensor, len(ids)))
        check(gw.stop() == 0, "citygate exited non-zero on SIGTERM")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    validate_messages(tmp, sub.received())
    return by_sensor()


def check_each_case(readings, cases, label):
    """Every reading of each case's sensor has the case's quality, and only the
    concentration is published: the status registers are not."""
    for unit, (fault, quality, what) in sorted(cases.items()):
        rs = readings["co2-%d" % unit]
        qualities = {r["quality"] for r in rs}
        check(qualities == {quality}, "%s unit %d (%s, %s): qualities %r, expected %r"
              % (label, unit, fault, what, sorted(qualities), quality))
        for r in rs:
            check(set(r["values"]) == {"co2"} and r["units"] == {"co2": "ppm"},
                  "%s unit %d: %r; only the concentration is published" % (label, unit, r))
            check(r["kind"] == "air-quality", "%s unit %d: kind %r" % (label, unit, r["kind"]))


def test_each_rule_gives_its_quality(tmp):
    readings = collect(tmp, FIXTURE, CASES)
    check_each_case(readings, CASES, "fixture")
    # The forced concentration is published as read, whatever its quality.
    check({r["values"]["co2"] for r in readings["co2-10"]} == {40000},
          "forced co2 %r" % readings["co2-10"])
    check(all(400 <= r["values"]["co2"] <= 1200 for r in readings["co2-1"]),
          "simulated co2 %r" % [r["values"]["co2"] for r in readings["co2-1"]])
    print("  %d sensors, each with its rule's quality" % len(CASES))


# The shipped Vaisala GMP252: device status and CO2 status as its user guide gives them.
GMP252_CASES = {
    1: (None, "ok", "both status registers 0"),
    2: ("force=deviceStatus:1", "sensor-fault", "device status 1: critical error"),
    3: ("force=deviceStatus:2", "sensor-fault", "device status 2: error"),
    4: ("force=deviceStatus:4", "ok", "device status 4: a warning only"),
    5: ("force=co2Status:2", "warming-up", "CO2 status 2: reading not reliable"),
    6: ("force=co2Status:256", "warming-up", "CO2 status 256: measurement not ready"),
    7: ("force=deviceStatus:6", "sensor-fault", "error and warning together"),
}


def test_gmp252_status_registers(tmp):
    readings = collect(tmp, "gmp252", GMP252_CASES)
    check_each_case(readings, GMP252_CASES, "gmp252")
    print("  gmp252: %d sensors, each with its status register's quality" % len(GMP252_CASES))


def test_published_status_point(tmp):
    """With publish: true the status register is a value: the state of the first rule that
    matches and names one."""
    profile = json.load(open(FIXTURE))
    profile["name"] = "co2-status-published"
    for p in profile["points"]:
        if p["name"] == "meterStatus":
            p["publish"] = True
    path = tmp.file("co2-status-published.json", json.dumps(profile))
    cases = {1: (None, "ok", "normal"), 2: ("force=meterStatus:0x3", "sensor-fault", "fault"),
             3: ("force=meterStatus:0x20", "stale", "not-updated"),
             4: ("force=meterStatus:0x80", "out-of-range", "unknown")}
    readings = collect(tmp, path, cases)
    for unit, (fault, quality, state) in sorted(cases.items()):
        for r in readings["co2-%d" % unit]:
            check(r["quality"] == quality and r["values"].get("meterStatus") == state,
                  "unit %d (%s): %r, expected meterStatus %r with quality %r"
                  % (unit, fault, r, state, quality))
    print("  published status: normal, fault, not-updated, unknown")


def test_check_names_a_bad_rule(tmp):
    """--check refuses a rule that could never match, naming the profile and the pointer."""
    profile = json.load(open(FIXTURE))
    profile["points"][1]["states"][1]["mask"] = 0x10000
    profile["points"][1]["states"].append({"value": 1, "quality": "broken"})
    path = tmp.file("bad.json", json.dumps(profile))
    sensors = [{"id": "co2-1", "bus": "lan", "driver": "modbus", "profile": path, "unit_id": 1}]
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": 1502}]
    cfg = {"gateway": {"id": "gw-test-1"},
           "mqtt": {"uri": "tcp://127.0.0.1:1883", "topic_prefix": "city/test"},
           "store": {"path": os.path.join(tmp.path, "outbox.db")},
           "buses": buses, "sensors": sensors}
    r = run([CITYGATE, "--check", "-c", tmp.file("citygate.json", json.dumps(cfg))])
    out = r.stdout + r.stderr
    check(r.returncode == 1, "--check exited %d: %s" % (r.returncode, out))
    for line in ("%s: /points/1/states/1/mask: mask 0x10000 does not fit a u16 point "
                 "(at most 0xffff)" % path,
                 "%s: /points/1/states/6/quality: must be one of" % path):
        check(line in out, "--check does not say %r:\n%s" % (line, out))


if __name__ == "__main__":
    main([test_each_rule_gives_its_quality, test_gmp252_status_registers,
          test_published_status_point,
          test_check_names_a_bad_rule])
