"""The command line: exit codes, --check messages, --once against citygate-sim."""
import json
import os
import re
import shutil

from harness import (CITYGATE, EXAMPLE_PROFILES, SIM, SRC, Sim, check, main, run,
                     validate_messages)


def test_version_help_usage(tmp):
    r = run([CITYGATE, "--version"])
    check(r.returncode == 0 and r.stdout.startswith("citygate "), "--version: %r" % r.stdout)
    r = run([CITYGATE, "--help"])
    check(r.returncode == 0 and "--check" in r.stdout, "--help")
    for args in ([], ["--bogus"], ["-c"], ["-c", "a.json", "extra"]):
        r = run([CITYGATE] + args)
        check(r.returncode == 2, "usage error %r exits 2, got %d" % (args, r.returncode))


def test_sim_help_lists_the_readme_faults(tmp):
    """citygate-sim --help names every slave fault the README lists, with the
    README's meaning of restart=S; it lacked restart=S."""
    readme = open(os.path.join(SRC, "README.md")).read()
    faults = re.search(r"Faults\s+per slave \(comma-separated\):(.*?`force=POINT:VALUE`)",
                       readme, re.S)
    check(faults, "the README lists the slave faults")
    names = re.findall(r"`([^`]+)`", faults.group(1))
    check(len(names) == 9 and "restart=S" in names, "the README's faults: %r" % names)
    r = run([SIM, "--help"])
    help_text = " ".join((r.stdout + r.stderr).split())
    check(r.returncode == 0, "citygate-sim --help exits 0, got %d" % r.returncode)
    for name in names:
        check(re.search(r"(^|\s)%s(\s|$)" % re.escape(name), help_text),
              "citygate-sim --help names %s: %s" % (name, help_text))
    check("restart=S (counters start again from 0 every S seconds)" in help_text,
          "restart=S means what the README says: %s" % help_text)


def test_check_examples_valid(tmp):
    for name in sorted(os.listdir(os.path.join(SRC, "examples"))):
        if name.endswith(".json"):
            r = run([CITYGATE, "--check", "-c", os.path.join(SRC, "examples", name)])
            check(r.returncode == 0 and r.stdout == "",
                  "%s: exit %d: %s%s" % (name, r.returncode, r.stdout, r.stderr))


def test_check_reports_pointers(tmp):
    path = tmp.file("bad.json", json.dumps({
        "gateway": {"id": "gw 1"},
        "mqtt": {"uri": "tcp://127.0.0.1:1883", "topic_prefix": "city/x", "qos": 2},
        "store": {"path": "/tmp/x.db", "colour": "red"},
        "buses": [{"id": "b", "type": "modbus-rtu", "device": "/dev/null", "baud": 1234}],
        "sensors": [{"id": "s", "bus": "nope", "driver": "modbus", "profile": "aqt530"},
                    {"id": "t", "bus": "b", "driver": "modbus", "profile": "no-such-profile"}],
    }))
    r = run([CITYGATE, "--check", "-c", path])
    check(r.returncode == 1, "invalid config exits 1, got %d" % r.returncode)
    lines = r.stdout.splitlines()
    for ptr in ("/gateway/id", "/mqtt/qos", "/store/colour", "/buses/0/baud", "/sensors/0/bus",
                "/sensors/1/profile"):
        check(any(l.startswith("%s: %s: " % (path, ptr)) for l in lines),
              "no line for %s in:\n%s" % (ptr, r.stdout))
    malformed = tmp.file("malformed.json", '{\n  "gateway": {\n    "id": "x",,\n')
    r = run([CITYGATE, "--check", "-c", malformed])
    check(r.returncode == 1 and "line 3" in r.stdout and "column" in r.stdout,
          "malformed JSON names line and column: %r" % r.stdout)


def test_check_serial_server_port_once(tmp):
    """Two modbus-rtu-tcp buses on one serial server port would throw each other off."""
    cfg = {"gateway": {"id": "g"}, "mqtt": {"uri": "tcp://127.0.0.1:1", "topic_prefix": "c/x"},
           "store": {"path": "o.db"},
           "buses": [{"id": "a", "type": "modbus-rtu-tcp", "host": "192.0.2.4", "port": 4001},
                     {"id": "b", "type": "modbus-rtu-tcp", "host": "192.0.2.4", "port": 4001},
                     {"id": "c", "type": "modbus-rtu-tcp", "host": "192.0.2.4", "port": 4002}],
           "sensors": [{"id": "s%d" % i, "bus": b, "driver": "modbus", "profile": "aqt530"}
                       for i, b in enumerate("abc")]}
    path = tmp.file("ports.json", json.dumps(cfg))
    r = run([CITYGATE, "--check", "-c", path])
    check(r.returncode == 1 and r.stdout.splitlines() == [
        "%s: /buses/1/port: 192.0.2.4:4001 is already used by /buses/0; a serial server's "
        "port is one line" % path], "one line for the shared port: %r" % r.stdout)


def test_once_names_the_exception(tmp):
    """A device exception is named, with the request it answered: which register
    the profile asks for that the device does not have, or the device's own
    failure. Before, --once said only "device exception"."""
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530:exception=4"])
    try:
        port = int(sim.endpoints[0][2])
        far = tmp.file("far.json", json.dumps({
            "name": "far", "kind": "air-quality",
            "points": [{"name": "pm25", "table": "holding", "address": 200, "unit": "ug/m3"}]}))
        cfg = {
            "gateway": {"id": "gw-once"},
            "mqtt": {"uri": "tcp://127.0.0.1:1", "topic_prefix": "city/x"},
            "store": {"path": os.path.join(tmp.path, "unused.db")},
            "buses": [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
                       "timeout_ms": 300}],
            "sensors": [{"id": "far", "bus": "lan", "driver": "modbus", "profile": far,
                         "unit_id": 1},
                        {"id": "sick", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                         "unit_id": 2}],
        }
        r = run([CITYGATE, "--once", "-c", tmp.file("exc.json", json.dumps(cfg))])
        check(r.returncode == 3, "exit 3, got %d" % r.returncode)
        check("far: device exception: unit 1 holding 200+1: Illegal data address (exception 2)"
              in r.stderr, "the exception by name and its request: %r" % r.stderr)
        check("sick: device exception: unit 2 holding 0+13: " in r.stderr and
              "(exception 4)" in r.stderr, "the device's own failure: %r" % r.stderr)
    finally:
        sim.stop()


def test_check_refuses_units_no_format_carries(tmp):
    """A profile unit that the payload formats cannot carry (RFC 8428 has no such
    unit and the encoder no conversion: "ppmv", "ppt") is refused at the unit's
    place in the profile, with the units that can be used, whatever the format:
    a config must not become invalid by changing mqtt.format. Before, "ppmv"
    passed --check (native) and "ppt" passed for native and NGSI-LD."""
    profile = tmp.file("odd.json", json.dumps({
        "name": "odd", "kind": "air-quality",
        "points": [{"name": "pm25", "table": "holding", "address": 0, "unit": "ug/m3"},
                   {"name": "no2", "table": "holding", "address": 1, "unit": "ppb"},
                   {"name": "co", "table": "holding", "address": 2, "unit": "ppt"}]}))

    def config(name, fmt):
        return tmp.file(name, json.dumps({
            "gateway": {"id": "gw-1"},
            "mqtt": {"uri": "tcp://127.0.0.1:1883", "topic_prefix": "city/x", "format": fmt},
            "store": {"path": os.path.join(tmp.path, "x.db")},
            "buses": [{"id": "b", "type": "modbus-rtu", "device": "/dev/null"}],
            "sensors": [{"id": "s", "bus": "b", "driver": "modbus", "profile": profile}]}))
    for fmt in ("senml", "native", "ngsi-ld"):
        r = run([CITYGATE, "--check", "-c", config("odd-%s.json" % fmt, fmt)])
        check(r.returncode == 1, "%s: an unknown unit exits 1, got %d: %s"
              % (fmt, r.returncode, r.stdout))
        lines = r.stdout.splitlines()
        check(len(lines) == 1 and lines[0].startswith("%s: /points/2/unit: " % profile)
              and '"ppt"' in lines[0] and "Cel" in lines[0] and "ug/m3" in lines[0],
              "one problem, at the profile's ppt unit, with the list: %r" % r.stdout)

def test_once(tmp):
    link = os.path.join(tmp.path, "tty")
    sim = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120",
                    "--slave", "3:aqt530:silent"])
    try:
        cfg = {
            "gateway": {"id": "gw-once"},
            "mqtt": {"uri": "tcp://127.0.0.1:1", "topic_prefix": "city/x"},
            "store": {"path": os.path.join(tmp.path, "unused.db")},
            "buses": [{"id": "rs485", "type": "modbus-rtu", "device": link, "timeout_ms": 200}],
            "sensors": [{"id": "aq", "bus": "rs485", "driver": "modbus", "profile": "aqt530",
                         "unit_id": 1},
                        {"id": "bay", "bus": "rs485", "driver": "modbus", "profile": "ld120",
                         "unit_id": 2}],
        }
        path = tmp.file("once.json", json.dumps(cfg))
        r = run([CITYGATE, "--once", "-c", path])
        check(r.returncode == 0, "--once exit %d: %s" % (r.returncode, r.stderr))
        readings = [json.loads(l) for l in r.stdout.splitlines()]
        check([x["sensor"] for x in readings] == ["aq", "bay"], "one line per sensor")
        check(all("seq" not in x for x in readings), "--once readings carry no seq")
        validate_messages(tmp, [(None, l) for l in r.stdout.splitlines()],
                          lambda topic, payload: "reading-once")
        check(5 <= readings[0]["values"]["pm25"] <= 35, "pm25 %r" % readings[0]["values"])
        check(not os.path.exists(cfg["store"]["path"]), "--once opens no store")

        cfg["sensors"].append({"id": "dead", "bus": "rs485", "driver": "modbus",
                               "profile": "aqt530", "unit_id": 3})
        path = tmp.file("once-dead.json", json.dumps(cfg))
        r = run([CITYGATE, "--once", "-c", path])
        check(r.returncode == 3, "a silent sensor makes --once exit 3, got %d" % r.returncode)
        check("dead" in r.stderr and "timed out" in r.stderr, "failure on stderr: %r" % r.stderr)
        check(len(r.stdout.splitlines()) == 2, "the others still print")
    finally:
        sim.stop()


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    check(len(keys) == len(set(keys)), "duplicate keys in %r" % keys)
    return dict(pairs)


def test_once_traffic_counter(tmp):
    """A counter's first poll is only its baseline: --once polls it again after
    interval_s and prints what the daemon publishes, one reading per lane."""
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES, "--tcp", "0",
                    "--slave", "1:traffic-counter"])
    port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    try:
        cfg = {
            "gateway": {"id": "gw-once"},
            "mqtt": {"uri": "tcp://127.0.0.1:1", "topic_prefix": "city/x"},
            "store": {"path": os.path.join(tmp.path, "unused.db")},
            "profile_dirs": [EXAMPLE_PROFILES],
            "buses": [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}],
            "sensors": [{"id": "tl-01", "bus": "lan", "driver": "modbus",
                         "profile": "traffic-counter", "unit_id": 1, "interval_s": 0.5}],
        }
        r = run([CITYGATE, "--once", "-c", tmp.file("once-traffic.json", json.dumps(cfg))])
    finally:
        sim.stop()
    check(r.returncode == 0, "--once on a traffic counter: exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    readings = [json.loads(l, object_pairs_hook=no_duplicate_keys) for l in lines]
    check([x["values"].get("laneId") for x in readings] == [1, 2], "one line per lane: %r" % lines)
    for x in readings:
        check(x["sensor"] == "tl-01" and x["kind"] == "traffic" and "seq" not in x, "%r" % x)
        check(x["interval_s"] == 0.5, "interval_s %r" % x.get("interval_s"))
        check(sorted(x["values"]) == ["averageVehicleSpeed", "intensity", "laneId", "occupancy"],
              "values %r" % x["values"])
    validate_messages(tmp, [("once", l) for l in lines], lambda topic, payload: "reading-once")
    print("  " + lines[0][:160])



def test_once_prints_each_sensors_format(tmp):
    """--once prints what the daemon would publish: each sensor in its own
    format (mqtt.format or the sensor's), with its NGSI-LD attributes and one
    identity per lane, without seq; every line valid by reading-once."""
    link = os.path.join(tmp.path, "tty")
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES,
                    "--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120",
                    "--tcp", "0", "--slave", "1:traffic-counter"])
    port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    lot = "urn:ngsi-ld:OffStreetParking:gw-once:lot-1"
    try:
        cfg = {
            "gateway": {"id": "gw-once", "location": {"lat": 37.75, "lon": 128.88}},
            "mqtt": {"uri": "tcp://127.0.0.1:1", "topic_prefix": "city/x", "format": "senml"},
            "store": {"path": os.path.join(tmp.path, "unused.db")},
            "profile_dirs": [EXAMPLE_PROFILES],
            "buses": [{"id": "rs485", "type": "modbus-rtu", "device": link, "timeout_ms": 200},
                      {"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}],
            "sensors": [{"id": "aq", "bus": "rs485", "driver": "modbus", "profile": "aqt530",
                         "unit_id": 1},
                        {"id": "bay", "bus": "rs485", "driver": "modbus", "profile": "ld120",
                         "unit_id": 2, "format": "ngsi-ld",
                         "ngsi_ld": {"category": ["offStreet"], "refParkingSite": lot}},
                        {"id": "tl", "bus": "lan", "driver": "modbus",
                         "profile": "traffic-counter", "unit_id": 1, "interval_s": 0.5,
                         "format": "ngsi-ld"}],
        }
        r = run([CITYGATE, "--once", "-c", tmp.file("formats.json", json.dumps(cfg))])
    finally:
        sim.stop()
    check(r.returncode == 0, "--once exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    docs = [json.loads(l, object_pairs_hook=no_duplicate_keys) for l in lines]
    check(len(docs) == 4, "aq, bay and two lanes: %r" % lines)
    check(isinstance(docs[0], list) and docs[0][0]["bn"] == "urn:dev:gw-once:aq:" and
          all(rec.get("n") != "seq" for rec in docs[0]), "aq in SenML: %r" % docs[0])
    check(docs[1]["type"] == "ParkingSpot" and docs[1]["refParkingSite"]["object"] == lot and
          "seq" not in docs[1], "bay in NGSI-LD with its attributes: %r" % docs[1])
    check([d["id"] for d in docs[2:]] == ["urn:ngsi-ld:TrafficFlowObserved:gw-once:tl:lane1",
                                          "urn:ngsi-ld:TrafficFlowObserved:gw-once:tl:lane2"],
          "one entity per lane: %r" % [d.get("id") for d in docs[2:]])
    validate_messages(tmp, [("once", l) for l in lines], lambda topic, payload: "reading-once")


def test_once_on_the_aqt530_example(tmp):
    """The example config as shipped, against the simulator its README names."""
    # A copy in tmp: the example's relative paths (store, serial line) then
    # resolve there, not in the source tree.
    example = tmp.file("aqt530-rtu.json")
    shutil.copy(os.path.join(SRC, "examples", "aqt530-rtu.json"), example)
    device = tmp.file(json.load(open(example))["buses"][0]["device"])
    sim = Sim(tmp, ["--rtu", device, "--slave", "1:aqt530"])
    try:
        r = run([CITYGATE, "--once", "-c", example])
    finally:
        sim.stop()
    check(r.returncode == 0, "--once on the example: exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    check(len(lines) == 1, "one reading: %r" % lines)
    reading = json.loads(lines[0])
    v, u = reading["values"], reading["units"]
    check(reading["sensor"] == "aq-001" and reading["kind"] == "air-quality", "%r" % reading)
    for name, lo, hi, unit in (("pm25", 5, 35, "ug/m3"), ("pm10", 10, 60, "ug/m3"),
                               ("no2", 5, 60, "ppb"), ("o3", 10, 80, "ppb"),
                               ("temperature", -5, 30, "Cel"),
                               ("relativeHumidity", 30, 90, "%RH"),
                               ("pressure", 990, 1030, "hPa")):
        check(lo <= v[name] <= hi and u[name] == unit, "%s = %r %s" % (name, v[name], u[name]))
    check(reading["quality"] == "ok", "quality %r" % reading["quality"])
    print("  " + lines[0][:160])


if __name__ == "__main__":
    main([test_version_help_usage, test_sim_help_lists_the_readme_faults,
          test_check_examples_valid, test_check_reports_pointers,
          test_check_refuses_units_no_format_carries,
          test_check_serial_server_port_once, test_once, test_once_names_the_exception, test_once_traffic_counter,
          test_once_prints_each_sensors_format,
          test_once_on_the_aqt530_example])
