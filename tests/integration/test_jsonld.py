"""NGSI-LD payloads as a JSON-LD processor reads them: every attribute a model or citygate term."""
import glob
import json
import os

from pyld import jsonld

from harness import (EXAMPLE_PROFILES, SRC, Broker, Gateway, Sim, Subscriber, base_config,
                     check, main, validate_messages, wait_for)

FIXTURES = os.path.join(SRC, "tests", "fixtures", "jsonld")
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
# Each context URL the entities name, and the local file a loader serves for
# it: the test fixtures for the Smart Data Models and the NGSI-LD core (see
# tests/fixtures/jsonld/README.md), citygate's own context as shipped.
CONTEXTS = {
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "context.jsonld": os.path.join(FIXTURES, "sdm-environment.jsonld"),
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/"
    "context.jsonld": os.path.join(FIXTURES, "sdm-parking.jsonld"),
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"
    "context.jsonld": os.path.join(FIXTURES, "sdm-transportation.jsonld"),
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/"
    "context.jsonld": os.path.join(FIXTURES, "sdm-weather.jsonld"),
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/"
    "context.jsonld": os.path.join(FIXTURES, "sdm-device.jsonld"),
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld":
        os.path.join(FIXTURES, "ngsi-ld-core.jsonld"),
    "https://citygate.example/schemas/citygate-context.jsonld":
        os.path.join(SRC, "schemas", "citygate-context.jsonld"),
}


def load_document(url, options=None):
    """A PyLD document loader that serves CONTEXTS and nothing else: an
    unknown context URL is an error, never a network fetch."""
    if url not in CONTEXTS:
        raise jsonld.JsonLdError("no local copy of %s" % url, "jsonld.LoadDocumentError",
                                 code="loading document failed")
    with open(CONTEXTS[url]) as f:
        return {"contextUrl": None, "documentUrl": url, "document": json.load(f)}


def defaulted(entity):
    """Expands entity and returns the attribute names and types that expanded
    to the NGSI-LD default vocabulary (terms no context defines)."""
    found = []

    def walk(node):
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key.startswith(DEFAULT_VOCAB):
                    found.append(key[len(DEFAULT_VOCAB):])
                if key == "@type":
                    for t in value if isinstance(value, list) else [value]:
                        if isinstance(t, str) and t.startswith(DEFAULT_VOCAB):
                            found.append("@type " + t[len(DEFAULT_VOCAB):])
                if key != "@value":
                    walk(value)
    walk(jsonld.expand(entity, {"documentLoader": load_document}))
    return found


def test_every_attribute_expands_to_a_model_term(tmp):
    link = os.path.join(tmp.path, "tty")
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES,
                    "--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120",
                    "--slave", "3:ld120", "--slave", "4:metsens600",
                    "--tcp", "0", "--slave", "1:traffic-counter"])
    port = int([e for e in sim.endpoints if e[0] == "tcp"][0][2])
    broker = Broker(tmp)
    buses = [{"id": "rs485", "type": "modbus-rtu", "device": link},
             {"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    lot_urn = "urn:ngsi-ld:OffStreetParking:gw-test-1:lot-1"
    bay = {"category": ["offStreet"], "refParkingSite": lot_urn}
    sensors = [
        {"id": "aq-1", "bus": "rs485", "driver": "modbus", "profile": "aqt530", "unit_id": 1,
         "interval_s": 0.5},
        {"id": "bay-1", "bus": "rs485", "driver": "modbus", "profile": "ld120", "unit_id": 2,
         "interval_s": 0.5, "ngsi_ld": bay},
        {"id": "bay-2", "bus": "rs485", "driver": "modbus", "profile": "ld120", "unit_id": 3,
         "interval_s": 0.5, "ngsi_ld": bay},
        {"id": "ws-1", "bus": "rs485", "driver": "modbus", "profile": "metsens600", "unit_id": 4,
         "interval_s": 0.5},
        {"id": "lanes-1", "bus": "lan", "driver": "modbus", "profile": "traffic-counter",
         "unit_id": 1, "interval_s": 1, "aligned": True}]
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["mqtt"]["format"] = "ngsi-ld"
    cfg["profile_dirs"] = [EXAMPLE_PROFILES]
    cfg["gateway"]["location"] = {"lat": 37.7519, "lon": 128.8761}
    cfg["lots"] = [{"id": "lot-1", "bays": ["bay-1", "bay-2"], "max_interval_s": 1}]
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    states = Subscriber(broker, "city/test/gw-test-1/sensor/+/state", client_id="cg-states")
    gw = Gateway(tmp, cfg).start()

    def types():
        return {json.loads(p)["type"] for _, p, _ in sub.received()}
    try:
        wait_for(lambda: len(types()) >= 5, 30, "an entity of every type")
        wait_for(lambda: len({t for t, _, _ in states.received()}) == len(sensors), 30,
                 "a Device state of every sensor")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        states.stop()
        sim.stop()
        broker.stop()

    validate_messages(tmp, sub.received(), lambda topic, payload: "reading-ngsi-ld")
    validate_messages(tmp, states.received(), lambda topic, payload: "sensor-state")
    messages = sub.received() + states.received()
    seen, attrs = {}, 0
    for topic, payload, _ in messages:
        entity = json.loads(payload)
        bad = defaulted(entity)
        check(not bad, "%s: %s fall to the default vocabulary" % (entity["id"], bad))
        seen.setdefault(entity["type"], entity)
        attrs += len(entity) - 3
    check(sorted(seen) == ["AirQualityObserved", "Device", "OffStreetParking", "ParkingSpot",
                           "TrafficFlowObserved", "WeatherObserved"], "types %r" % sorted(seen))
    check("stateReason" in seen["Device"] and "deviceState" in seen["Device"],
          "Device %r" % seen["Device"])
    # The Parking model's time attributes, and the config's Relationship.
    spot, lot = seen["ParkingSpot"], seen["OffStreetParking"]
    check("dateObserved" not in spot and "observedAt" in spot["status"], "ParkingSpot time")
    check("dateObserved" not in lot and "observationDateTime" in lot, "OffStreetParking time")
    check(spot["refParkingSite"] == {"type": "Relationship", "object": lot_urn} and
          spot["category"] == {"type": "Property", "value": ["offStreet"]},
          "config attributes: %r" % spot)

    # The check can fail: a term no context defines is found.
    probe = dict(seen["AirQualityObserved"], bogusLevel={"type": "Property", "value": 1})
    check(defaulted(probe) == ["bogusLevel"], "a probe term is caught: %r" % defaulted(probe))
    print("  %d entities, %d attributes, 0 in the default vocabulary" % (len(messages), attrs))


def test_shipped_examples_give_parking_spots_their_required_attributes(tmp):
    """ParkingSpot requires category and refParkingSite, which only the config
    knows: every bay sensor of the shipped configs gives them."""
    bays = 0
    for path in sorted(glob.glob(os.path.join(SRC, "examples", "*.json")) +
                       glob.glob(os.path.join(SRC, "etc", "*.json"))):
        for s in json.load(open(path))["sensors"]:
            if s.get("profile") == "ld120" or s["driver"] == "a02yyuw":
                attrs = s.get("ngsi_ld", {})
                check(attrs.get("category") in (["onStreet"], ["offStreet"]) and
                      attrs.get("refParkingSite", "").startswith("urn:ngsi-ld:"),
                      "%s: sensor %s lacks category or refParkingSite" % (path, s["id"]))
                bays += 1
    check(bays > 0, "no bay sensor in the shipped configs")
    print("  %d bay sensors" % bays)


if __name__ == "__main__":
    main([test_every_attribute_expands_to_a_model_term,
          test_shipped_examples_give_parking_spots_their_required_attributes])
