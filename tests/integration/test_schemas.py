"""Every shipped file and every payload format validates against schemas/ with ajv."""
import glob
import json
import os
import subprocess
import time

from harness import (BIN, SRC, Broker, Gateway, Sim, Subscriber, base_config, check, main,
                     validate_messages, wait_for)


def ajv(schema, files):
    r = subprocess.run(["ajv", "validate", "--spec=draft2020", "-c", "ajv-formats", "-s",
                        os.path.join(SRC, "schemas", schema)] + sum((["-d", f] for f in files), []),
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "%s: %s%s" % (schema, r.stdout[-2000:], r.stderr[-2000:]))


def test_schema_examples_and_encoder_samples(tmp):
    # test_encode writes each encoder's output for one reading of each kind.
    r = subprocess.run([os.path.join(BIN, "tests", "test_encode")], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0, "test_encode: %s" % r.stdout[-2000:])
    r = subprocess.run(["sh", os.path.join(SRC, "scripts", "validate-schema-examples.sh"),
                        "--samples", os.path.join(BIN, "encode-samples")],
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, "schema examples: %s%s" % (r.stdout[-3000:], r.stderr[-2000:]))
    print("  " + (r.stdout.strip().splitlines() or ["?"])[-1])


def test_shipped_configs_and_profiles(tmp):
    configs = sorted(glob.glob(os.path.join(SRC, "examples", "*.json")) +
                     glob.glob(os.path.join(SRC, "etc", "*.json")))
    profiles = sorted(glob.glob(os.path.join(SRC, "drivers", "profiles", "*.json")))
    check(configs and profiles, "nothing to validate")
    ajv("config.schema.json", configs)
    ajv("profile.schema.json", profiles)
    print("  %d configs, %d profiles valid" % (len(configs), len(profiles)))


def test_ngsi_ld_and_senml_payloads(tmp):
    """Per-sensor formats over the broker: each payload validates as its format."""
    link = os.path.join(tmp.path, "tty")
    sim = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120",
                    "--tcp", "0", "--slave", "1:traffic-counter"])
    port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    broker = Broker(tmp)
    buses = [{"id": "rs485", "type": "modbus-rtu", "device": link},
             {"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = []
    for fmt in ("ngsi-ld", "senml"):
        sensors += [
            {"id": "aq-" + fmt, "bus": "rs485", "driver": "modbus", "profile": "aqt530",
             "unit_id": 1, "interval_s": 0.5, "format": fmt},
            {"id": "bay-" + fmt, "bus": "rs485", "driver": "modbus", "profile": "ld120",
             "unit_id": 2, "interval_s": 0.5, "format": fmt},
            {"id": "lanes-" + fmt, "bus": "lan", "driver": "modbus",
             "profile": "traffic-counter", "unit_id": 1, "interval_s": 1, "aligned": True,
             "format": fmt}]
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["gateway"]["location"] = {"lat": 37.7519, "lon": 128.8761}
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: len({t for t, _, _ in sub.received()}) >= 6, 30,
                 "payloads from every sensor")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    def schema_for(topic, payload):
        return "reading-ngsi-ld" if topic.split("/")[-1].endswith("ngsi-ld") else "senml"
    counts = validate_messages(tmp, sub.received(), schema_for)
    types = set()
    lane_names = {}  # (topic, lane) -> the entity ids or base names seen
    for topic, payload, _ in sub.received():
        doc = json.loads(payload)
        if topic.endswith("ngsi-ld"):
            types.add(doc["type"])
            check(doc["id"].startswith("urn:ngsi-ld:%s:gw-test-1:" % doc["type"]), doc["id"])
            check("location" in doc and doc["location"]["type"] == "GeoProperty",
                  "location from the config")
            check(doc["seq"]["type"] == "Property", "seq is a Property")
            if "laneId" in doc:
                lane_names.setdefault((topic, doc["laneId"]["value"]), set()).add(doc["id"])
        else:
            check(doc[0]["bn"].startswith("urn:dev:gw-test-1:"), doc[0]["bn"])
            check(any(rec.get("n") == "seq" for rec in doc), "seq is a record")
            for rec in doc:
                if rec.get("n") == "laneId":
                    lane_names.setdefault((topic, rec["v"]), set()).add(doc[0]["bn"])
    # Both lanes of each traffic sensor share a topic: each lane has exactly one
    # identity of its own (entity id, base name), shared with no other lane.
    check(sorted(lane_names) == [("city/test/gw-test-1/traffic/lanes-" + f, lane)
                                 for f in ("ngsi-ld", "senml") for lane in (1, 2)],
          "lane readings per topic: %r" % sorted(lane_names))
    for (topic, lane), names in sorted(lane_names.items()):
        check(len(names) == 1 and next(iter(names)).rstrip(":").endswith(":lane%d" % lane),
              "%s lane %d: identities %r" % (topic, lane, names))
    check(types == {"AirQualityObserved", "ParkingSpot", "TrafficFlowObserved"},
          "NGSI-LD types %r" % types)
    print("  validated %r" % counts)


if __name__ == "__main__":
    main([test_schema_examples_and_encoder_samples, test_shipped_configs_and_profiles,
          test_ngsi_ld_and_senml_payloads])
