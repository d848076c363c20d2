"""Every shipped file and every payload format validates against schemas/ with ajv."""
import glob
import json
import os
import re
import subprocess
import time

from harness import (BIN, EXAMPLE_PROFILES, SRC, Broker, Gateway, Sim, Subscriber, base_config,
                     check, main, validate_messages, wait_for)


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



def ajv_verdicts(tmp, schema, docs):
    """Validates each doc (a parsed payload) on its own against schema and
    returns {index: valid?}, from ajv's per-file verdicts."""
    folder = os.path.join(tmp.path, "verdicts-" + schema)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, doc in enumerate(docs):
        paths.append(os.path.join(folder, "%03d.json" % i))
        with open(paths[-1], "w") as f:
            json.dump(doc, f)
    refs = ["senml.schema.json", "reading-ngsi-ld.schema.json", "reading-air-quality.schema.json",
            "reading-parking.schema.json", "reading-traffic.schema.json",
            "reading-weather.schema.json"]
    r = subprocess.run(["ajv", "validate", "--spec=draft2020", "-c", "ajv-formats", "-s",
                        os.path.join(SRC, "schemas", schema + ".schema.json")] +
                       sum((["-r", os.path.join(SRC, "schemas", f)] for f in refs
                            if f != schema + ".schema.json"), []) +
                       sum((["-d", p] for p in paths), []),
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    return {i: (p + " valid") in out for i, p in enumerate(paths)}


def test_seq_required_when_published(tmp):
    """A published reading without seq is refused by its schema (a platform
    must be able to catch a reading without its dedupe key); --once output,
    which has none, validates against reading-once, which refuses a seq."""
    samples = os.path.join(BIN, "encode-samples")
    r = subprocess.run([os.path.join(BIN, "tests", "test_encode")], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0, "test_encode: %s" % r.stdout[-2000:])
    published = {}
    for path in sorted(glob.glob(os.path.join(samples, "*--*.json"))):
        name = os.path.basename(path).split("--")[0]
        if name != "reading-once":
            published.setdefault(name, []).append(json.load(open(path)))
    check(sorted(published) == ["reading-air-quality", "reading-ngsi-ld", "reading-parking",
                                "reading-traffic", "reading-weather", "senml"],
          "samples %r" % sorted(published))

    def without_seq(doc):
        if isinstance(doc, list):
            return [rec for rec in doc if rec.get("n") != "seq"]
        return {k: v for k, v in doc.items() if k != "seq"}
    once = []
    for name, docs in sorted(published.items()):
        check(all(ajv_verdicts(tmp, name, docs).values()), "%s samples valid" % name)
        stripped = [without_seq(d) for d in docs]
        verdicts = ajv_verdicts(tmp, name, stripped)
        check(not any(verdicts.values()), "%s without seq refused: %r" % (name, verdicts))
        once += stripped
    # reading-once lists the native fields itself: the same as the published
    # schemas', but seq.
    once_schema = json.load(open(os.path.join(SRC, "schemas", "reading-once.schema.json")))
    for i, kind in enumerate(("air-quality", "parking", "traffic", "weather")):
        native = json.load(open(os.path.join(SRC, "schemas", "reading-%s.schema.json" % kind)))
        branch = once_schema["anyOf"][i]
        check(sorted(branch["properties"]) == sorted(set(native["properties"]) - {"seq"}) and
              branch["required"] == [k for k in native["required"] if k != "seq"],
              "reading-once's %s fields differ from reading-%s's" % (kind, kind))
    # The same payloads without seq are what --once prints: valid as such, and
    # refused with a seq.
    verdicts = ajv_verdicts(tmp, "reading-once", once)
    check(all(verdicts.values()), "reading-once accepts every format without seq: %r"
          % verdicts)
    for name, docs in sorted(published.items()):
        verdicts = ajv_verdicts(tmp, "reading-once", docs)
        check(not any(verdicts.values()), "reading-once refuses %s with seq: %r"
              % (name, verdicts))
    print("  %d payloads: refused without seq when published, with seq from --once" % len(once))

def test_shipped_configs_and_profiles(tmp):
    configs = sorted(glob.glob(os.path.join(SRC, "examples", "*.json")) +
                     glob.glob(os.path.join(SRC, "etc", "*.json")))
    profiles = sorted(glob.glob(os.path.join(SRC, "drivers", "profiles", "*.json")) +
                      glob.glob(os.path.join(EXAMPLE_PROFILES, "*.json")))
    # The tests' own profiles (status rules) follow the same schema.
    profiles += sorted(glob.glob(os.path.join(SRC, "tests", "fixtures", "profiles", "*.json")))
    check(configs and profiles, "nothing to validate")
    ajv("config.schema.json", configs)
    ajv("profile.schema.json", profiles)
    print("  %d configs, %d profiles valid" % (len(configs), len(profiles)))


def test_shipped_profiles_cite_their_source(tmp):
    """A shipped profile is a real device's map: its description names the
    published document it comes from ("Source: ..."), and docs/drivers.md lists
    it. A map that cannot be confirmed is not shipped; an example of the format
    lives in examples/profiles/, which the package does not install."""
    shipped = sorted(glob.glob(os.path.join(SRC, "drivers", "profiles", "*.json")))
    check(shipped, "no shipped profiles")
    names = []
    for path in shipped:
        with open(path) as f:
            profile = json.load(f)
        names.append(os.path.basename(path)[:-len(".json")])
        source = profile.get("description", "").partition("Source:")[2].strip()
        check(source, "%s: its description cites no \"Source:\"" % os.path.relpath(path, SRC))
    doc = open(os.path.join(SRC, "docs", "drivers.md")).read()
    table = doc.split("\n#### Shipped profiles\n", 1)[1].split("\n\n| profile |", 1)[1]
    table = table.split("\n\n", 1)[0]
    listed = sorted(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    check(listed == names, "docs/drivers.md lists %r, drivers/profiles holds %r"
          % (listed, names))
    print("  %d shipped profiles, each citing its source: %s" % (len(names), ", ".join(names)))


def test_ngsi_ld_and_senml_payloads(tmp):
    """Per-sensor formats over the broker: each payload validates as its format."""
    link = os.path.join(tmp.path, "tty")
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES,
                    "--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120",
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
    cfg["profile_dirs"] = [EXAMPLE_PROFILES]
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



def test_quality_values_documented(tmp):
    """Every quality the code can set (the table cg_quality_names in
    base/reading.c) is in the Quality table of docs/topics.md, so a platform
    knows what each one means."""
    text = open(os.path.join(SRC, "base", "reading.c")).read()
    emitted = set(re.findall(r'\[CG_QUALITY_\w+\] = "([^"]+)"', text))
    doc = open(os.path.join(SRC, "docs", "topics.md")).read()
    table = doc.split("\n## Quality\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.M))
    check({"ok", "no-answer", "invalid"} <= emitted, "the scan finds the qualities: %r" % emitted)
    check(emitted <= documented, "undocumented qualities: %r" % sorted(emitted - documented))
    print("  %d qualities set by the code, all documented" % len(emitted))

if __name__ == "__main__":
    main([test_schema_examples_and_encoder_samples, test_seq_required_when_published,
          test_shipped_configs_and_profiles, test_shipped_profiles_cite_their_source,
          test_quality_values_documented,
          test_ngsi_ld_and_senml_payloads])
