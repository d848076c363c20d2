"""Sensor availability: each sensor's retained state topic says online, offline or
degraded, within the times the config gives, for late subscribers too."""
import json
import os
import signal
import time

from harness import (EXAMPLE_PROFILES, Broker, Gateway, Sim, Subscriber, base_config, check,
                     main, validate_messages, wait_for)

INTERVAL = 1.0       # every sensor's interval_s
TIMEOUT = 0.2        # the bus's timeout_ms, in s
DEADLINE = 3 * INTERVAL + TIMEOUT  # offline after this long without an answer
MARGIN = 1.0         # scheduling, the 100 ms main-loop turn, the broker, the sim's clock
STATE = "city/test/gw-test-1/sensor/+/state"
DEVICE_CONTEXT = ("https://raw.githubusercontent.com/smart-data-models/dataModel.Device/"
                  "master/context.jsonld")


def parse(payload):
    """A state payload, or None for an empty one (a clear; mosquitto_sub -v prints
    "(null)" for it)."""
    return None if payload in ("", "(null)") else json.loads(payload)


def states(sub, sensor):
    """[(payload dict or None for an empty message, arrival time)] of one sensor's topic."""
    return [(parse(p), at) for t, p, at in sub.received("/sensor/%s/state" % sensor)]


def value(doc):
    """The state of a native payload or an NGSI-LD Device."""
    return doc["deviceState"]["value"] if "deviceState" in doc else doc["state"]


def first(sub, sensor, state, after=0.0):
    for doc, at in states(sub, sensor):
        if doc and value(doc) == state and at > after:
            return at, doc
    return None


def retained(broker, name):
    """What a subscriber that arrives now gets at once: the retained states."""
    late = Subscriber(broker, STATE, client_id="cg-avail-" + name)
    try:
        time.sleep(1.0)
        return {t.split("/")[-2]: parse(p) for t, p, _ in late.received() if parse(p)}
    finally:
        late.stop()


def test_offline_online_degraded_and_late_subscribers(tmp):
    """aq-2 is silent from 5 s to 13 s of the simulator's clock: offline within the
    deadline of its last answer, online again at its next poll after it returns (its
    back-off is capped at its interval). tc-1's counters restart every 4 s: degraded
    with reason counter-reset, then online. aq-1 (NGSI-LD) stays online as a Device
    entity. A late subscriber gets every state, and so does one after a broker that
    lost its retained messages comes back: the gateway sends them all on reconnect."""
    silent_from, silent_until = 5.0, 13.0
    start = time.monotonic()
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES, "--tcp", "0", "--slave", "1:aqt530",
                    "--slave", "2:aqt530:silent,after=%g,until=%g" % (silent_from, silent_until),
                    "--slave", "3:traffic-counter:restart=4"])
    ready = time.monotonic()
    port = int(sim.endpoints[0][2])
    broker = Broker(tmp)
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": int(TIMEOUT * 1000), "backoff_max_s": INTERVAL}]
    sensors = [
        {"id": "aq-1", "bus": "lan", "driver": "modbus", "profile": "aqt530", "unit_id": 1,
         "interval_s": INTERVAL, "format": "ngsi-ld"},
        {"id": "aq-2", "bus": "lan", "driver": "modbus", "profile": "aqt530", "unit_id": 2,
         "interval_s": INTERVAL},
        {"id": "tc-1", "bus": "lan", "driver": "modbus", "profile": "traffic-counter",
         "unit_id": 3, "interval_s": INTERVAL, "format": "senml"}]
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["profile_dirs"] = [EXAMPLE_PROFILES]  # traffic-counter is an example, not shipped
    sub = Subscriber(broker, STATE, retained=False)
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: first(sub, "aq-2", "offline"), silent_from + DEADLINE + 10,
                 "aq-2 offline")
        wait_for(lambda: first(sub, "aq-2", "online", first(sub, "aq-2", "offline")[0]),
                 silent_until - silent_from + 10, "aq-2 online again")
        wait_for(lambda: first(sub, "tc-1", "degraded"), 15, "tc-1 degraded")
        late = retained(broker, "late")

        # A broker that comes back without its retained messages gets them all again.
        broker.stop()
        os.remove(os.path.join(tmp.path, "mosquitto-%d.db" % broker.port))
        broker.start()
        wait_for(lambda: gw.log_text().count("mqtt: connected to") >= 2, 15,
                 "the gateway reconnected")
        time.sleep(1.0)
        again = retained(broker, "after-restart")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    # Offline: after the deadline of its last answer, which came at most one interval
    # (plus a timeout) before the silence began, and at most the deadline after it.
    # The simulator's clock started between start and ready: measured from start the
    # time is at most the true one plus (ready - start), from ready at least.
    off_at, off = first(sub, "aq-2", "offline")
    offline_after = off_at - (start + silent_from)
    check(off_at - (ready + silent_from) >= DEADLINE - INTERVAL - TIMEOUT - MARGIN and
          offline_after <= DEADLINE + MARGIN + (ready - start),
          "aq-2 offline %.2f s after it fell silent (deadline %.1f s)"
          % (offline_after, DEADLINE))
    check("no answer for 3 x interval + timeout (3.2 s)" in off["reason"] and
          "last poll:" in off["reason"], "offline reason %r" % off["reason"])
    check(off["last_ts"] is not None, "the last good reading's ts: %r" % off)
    on_at, on = first(sub, "aq-2", "online", off_at)
    online_after = on_at - (start + silent_until)
    check(online_after <= INTERVAL + TIMEOUT + MARGIN + (ready - start),
          "aq-2 online %.2f s after it answers again (interval %.1f s)"
          % (online_after, INTERVAL))
    check(on["reason"] == "answering" and on["last_ts"] > off["last_ts"], "online %r" % on)
    _, degraded = first(sub, "tc-1", "degraded")
    check(degraded["reason"] == "quality counter-reset", "degraded %r" % degraded)
    check(first(sub, "tc-1", "online", first(sub, "tc-1", "degraded")[0]),
          "tc-1 online after the reset")
    check(not [d for d, _ in states(sub, "aq-1") if value(d) != "online"],
          "aq-1 stayed online")

    for name, got in (("late subscriber", late), ("after the broker restart", again)):
        check(sorted(got) == ["aq-1", "aq-2", "tc-1"], "%s: retained %r" % (name, sorted(got)))
        check(value(got["aq-1"]) == "online" and value(got["aq-2"]) == "online",
              "%s: %r" % (name, got))

    # NGSI-LD: a Smart Data Models Device entity; SenML and native: the native object.
    device = late["aq-1"]
    check(device["id"] == "urn:ngsi-ld:Device:gw-test-1:aq-1" and device["type"] == "Device",
          "Device id %r" % device)
    check(device["deviceState"]["type"] == "Property" and
          device["dateLastValueReported"]["value"]["@type"] == "DateTime" and
          device["stateReason"] == {"type": "Property", "value": "answering"} and
          device["@context"][0] == DEVICE_CONTEXT, "Device attributes %r" % device)
    check(set(device) == {"id", "type", "deviceState", "dateLastValueReported", "stateReason",
                          "@context"}, "Device keys %r" % sorted(device))
    published = [(t, p) for t, p, _ in sub.received()]
    published += [("x/sensor/%s/state" % k, json.dumps(v)) for k, v in late.items()]
    counts = validate_messages(tmp, published, lambda t, p: "sensor-state")
    check(not any("seq" in (d or {}) for s in ("aq-1", "aq-2", "tc-1")
                  for d, _ in states(sub, s)), "no seq in a state")
    print("  offline %.2f s after silence (deadline %.1f s), online %.2f s after return "
          "(interval %.1f s); %d states valid; retained for %d sensors after a "
          "broker restart" % (offline_after, DEADLINE, online_after, INTERVAL,
                              counts["sensor-state"], len(again)))


def test_reload_clears_removed_sensor(tmp):
    """A reload that removes aq-2 empties its retained state; aq-1 keeps its state,
    from before the reload."""
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530"])
    port = int(sim.endpoints[0][2])
    broker = Broker(tmp)
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": int(TIMEOUT * 1000)}]
    sensors = [{"id": "aq-%d" % u, "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": u, "interval_s": INTERVAL} for u in (1, 2)]
    cfg = base_config(tmp, broker, buses, sensors)
    sub = Subscriber(broker, STATE, retained=False)
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: first(sub, "aq-1", "online") and first(sub, "aq-2", "online"), 15,
                 "both sensors online")
        before = retained(broker, "before")
        cfg["sensors"] = sensors[:1]
        with open(gw.config_path, "w") as f:
            json.dump(cfg, f)
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in gw.log_text(), 10, "the reload")
        wait_for(lambda: any(d is None for d, _ in states(sub, "aq-2")), 10,
                 "aq-2's state cleared")
        after = retained(broker, "after")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    check(sorted(before) == ["aq-1", "aq-2"], "retained before %r" % sorted(before))
    check(sorted(after) == ["aq-1"], "retained after the reload %r" % sorted(after))
    check(after["aq-1"]["since"] == before["aq-1"]["since"],
          "aq-1's state kept across the reload: %r, %r" % (before["aq-1"], after["aq-1"]))
    check(len([d for d, _ in states(sub, "aq-1")]) == 1, "aq-1 not published again")
    print("  aq-2 cleared, aq-1 kept (online since %s)" % after["aq-1"]["since"])


if __name__ == "__main__":
    main([test_offline_online_degraded_and_late_subscribers,
          test_reload_clears_removed_sensor])
