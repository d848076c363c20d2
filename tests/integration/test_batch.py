"""Batches (mqtt.batch) against real mosquitto and citygate-sim: nothing lost through an
outage and SIGKILLs, the latency bound when live, each format against its schema within a
broker's Maximum Packet Size, a damaged row set aside without spoiling its batch, and a
refused batch's readings in quarantine, not counted delivered."""
import calendar
import json
import os
import sqlite3
import struct
import subprocess
import threading
import time

from harness import (CITYGATE, Broker, Gateway, Sim, Subscriber, _track, base_config, check,
                     main, run, schema_for, skipped_seqs, stored_readings, validate_messages,
                     wait_for)

BATCH_TOPIC = "city/test/gw-test-1/batch"


def unpack(payload):
    """The readings of one batch payload as (seq, sensor) pairs, in any of the three
    formats, as docs/topics.md tells a consumer to unpack them."""
    b = json.loads(payload)
    out = []
    if isinstance(b, dict):  # native
        for s in b["sensors"]:
            check(0 <= s["layout"] < len(b["layouts"]), "layout index %r" % s["layout"])
            names = b["layouts"][s["layout"]]["names"]
            for r in s["readings"]:
                check(len(r["values"]) == len(names), "values follow the layout")
                out.append((r["seq"], s["sensor"]))
    elif b and "bn" in b[0]:  # senml: a reading runs from one bn to the next
        sensor = None
        for rec in b:
            if "bn" in rec:
                sensor = rec["bn"].split(":")[3]
            if rec.get("n") == "seq":
                out.append((rec["v"], sensor))
    else:  # ngsi-ld
        for e in b:
            out.append((e["seq"]["value"], e["id"].split(":")[-1]))
    return out


def batch_seqs(sub):
    """Every seq delivered in a batch (with repeats, if a batch came twice)."""
    return [seq for _, p, _ in sub.received("/batch") for seq, _ in unpack(p)]


def status(gw):
    r = run([CITYGATE, "--status", "-c", gw.config_path])
    check(r.returncode == 0, "--status failed: %s" % r.stderr)
    return json.loads(r.stdout)


def quarantine_list(gw):
    r = run([CITYGATE, "--quarantine", "list", "-c", gw.config_path])
    check(r.returncode == 0, "--quarantine list: %s" % r.stderr)
    return [json.loads(line) for line in r.stdout.splitlines()]


def aq_sensors(tmp, n, interval_s, formats=None):
    args = ["--tcp", "0"]
    for i in range(n):
        args += ["--slave", "%d:aqt530" % (i + 1)]
    sim = Sim(tmp, args)
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": 300}]
    sensors = [{"id": "aq-%d" % (i + 1), "bus": "lan", "driver": "modbus",
                "profile": "aqt530", "unit_id": i + 1, "interval_s": interval_s}
               for i in range(n)]
    for s, f in zip(sensors, formats or []):
        s["format"] = f
    return sim, buses, sensors


def last_health(sub):
    h = sub.received("/health")
    check(h, "no health message")
    return json.loads(h[-1][1])


def publish_size(topic, payload_len, props_len):
    """Bytes of an MQTT 5 QoS 1 PUBLISH on the wire, as uplink/publisher.c counts them."""
    def varint(n):
        k = 1
        while n >= 128:
            n //= 128
            k += 1
        return k
    rest = 2 + len(topic) + 2 + varint(props_len) + props_len + payload_len
    return 1 + varint(rest) + rest


def props_len(ctype, user_key, user_value):
    """The MQTT 5 properties citygate puts on a reading or batch (no expiry here)."""
    return 2 + (3 + len(ctype)) + (1 + 2 + len(user_key) + 2 + len(user_value))


def test_outage_and_kills(tmp):
    """Batching on; the broker away while readings pile up, then back while the
    gateway is SIGKILLed twice mid-drain: every seq made is delivered (a resend after a
    kill may repeat one, never lose one), no batch beyond max_readings, the outbox
    empty at the end, and health counts the batches. Also the bytes per reading on the
    wire, batched against the same readings alone."""
    sim, buses, sensors = aq_sensors(tmp, 4, 0.05)
    broker = Broker(tmp)
    broker.stop()
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    cfg["mqtt"]["batch"] = {"max_readings": 50, "max_latency_ms": 300}
    # The backlog drains at 2 batches (100 readings) a second, so that the kills fall in
    # the middle of it.
    cfg["mqtt"]["replay_rate"] = 2
    path = cfg["store"]["path"]
    gw = Gateway(tmp, cfg).start()
    sub = None
    try:
        wait_for(lambda: os.path.exists(path) and status(gw)["rows"] >= 400, 60,
                 "400 readings stored during the outage")
        singles = {seq: (topic, payload) for seq, topic, payload, _ in stored_readings(path)}
        broker.start()
        sub = Subscriber(broker, "city/test/#", retained=False)
        for _ in range(2):
            before = len(sub.received("/batch"))
            wait_for(lambda: len(sub.received("/batch")) > before + 2, 30, "batches flowing")
            gw.kill()
            gw.start()
        wait_for(lambda: status(gw)["rows"] < 100 and sub.received("/health"), 60,
                 "the backlog drained")
        time.sleep(1)
        check(gw.stop() == 0, "clean stop")
        made = status(gw)["next_seq"] - 1
        rows_left = status(gw)["rows"]
        time.sleep(0.5)
    finally:
        if sub:
            sub.stop()
        sim.stop()
        broker.stop()
    got = batch_seqs(sub)
    skipped = skipped_seqs(gw.log_text())
    dead = {d["seq"] for d in quarantine_list(gw)}
    missing = sorted(set(range(1, made + 1)) - set(got) - skipped - dead)
    check(not dead, "nothing in quarantine: %r" % sorted(dead)[:10])
    check(not missing, "%d of %d seqs never delivered: %r" % (len(missing), made, missing[:20]))
    check(rows_left == 0, "the outbox is empty at the end: %d rows" % rows_left)
    check(not sub.received("/air-quality/aq-1"), "with batching, no single readings")
    sizes = [len(unpack(p)) for _, p, _ in sub.received("/batch")]
    check(max(sizes) <= 50, "a batch of %d readings, above max_readings 50" % max(sizes))
    check(max(sizes) == 50, "the backlog went in full batches: largest %d" % max(sizes))
    health = [json.loads(p) for _, p, _ in sub.received("/health")]
    check(any(h["mqtt"]["batches"] > 0 for h in health), "health counts batches")
    dups = len(got) - len(set(got))
    # Bytes on the wire per reading: the batches made only of readings stored during the
    # outage, against those same readings published alone.
    batched = single = n = 0
    for _, p, _ in sub.received("/batch"):
        seqs = [s for s, _ in unpack(p)]
        if not all(s in singles for s in seqs):
            continue
        batched += publish_size(BATCH_TOPIC, len(p.encode()), props_len(
            "application/json", "seqs", "%d-%d" % (min(seqs), max(seqs))))
        for s in seqs:
            topic, payload = singles[s]
            single += publish_size(topic, len(payload), props_len("application/json", "seq",
                                                                  str(s)))
        n += len(seqs)
    check(n >= 100, "enough outage readings batched to compare: %d" % n)
    print("  %d readings made, %d delivered, %d repeats after kills; %d batches of up to %d"
          % (made, len(set(got)), dups, len(sizes), max(sizes)))
    print("  bytes per reading on the wire (native, %d readings): alone %.1f, batched %.1f,"
          " ratio %.3f" % (n, single / n, batched / n, batched / single))


def test_live_latency(tmp):
    """Live readings wait for a batch to fill at most max_latency_ms: with max_readings
    1000 never reached, every reading still arrives within max_latency_ms plus the
    commit interval (store.batch_ms) and a margin, and batches hold several readings."""
    sim, buses, sensors = aq_sensors(tmp, 2, 0.2)
    broker = Broker(tmp)
    sub = Subscriber(broker, "city/test/#", retained=False)
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    latency_ms = 800
    cfg["mqtt"]["batch"] = {"max_readings": 1000, "max_latency_ms": latency_ms}
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: len(sub.received("/batch")) >= 8, 60, "8 batches")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    worst = 0.0
    sizes = []
    # A batch's arrival on the wall clock, against each reading's ts (the wall clock at
    # its poll); the first batches after start are left out (connecting).
    for _, p, at in sub.received("/batch")[2:]:
        wall = time.time() - (time.monotonic() - at)
        b = json.loads(p)
        n = 0
        for s in b["sensors"]:
            for r in s["readings"]:
                ts = calendar.timegm(time.strptime(r["ts"][:19], "%Y-%m-%dT%H:%M:%S")) + \
                    int(r["ts"][20:23]) / 1000
                worst = max(worst, wall - ts)
                n += 1
        sizes.append(n)
    bound = (latency_ms + cfg["store"].get("batch_ms", 100)) / 1000 + 1.0
    print("  %d batches of %d to %d readings; oldest reading waited at most %.2f s"
          " (bound %.2f s)" % (len(sizes), min(sizes), max(sizes), worst, bound))
    check(worst <= bound, "a reading waited %.2f s, bound %.2f s" % (worst, bound))
    check(max(sizes) >= 3, "batches gather readings while they wait: %r" % sizes)


class PropsSubscriber:
    """mosquitto_sub speaking MQTT 5, printing topic, content type, user properties and
    payload of each message."""

    def __init__(self, broker, topic):
        self.lines = []
        self.proc = _track(subprocess.Popen(
            ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(broker.port),
             "-t", topic, "-q", "1", "-F", "%t\t%C\t%P\t%p"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1))
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n").split("\t"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def batch_schema(topic, payload):
    if topic.endswith("/batch"):
        if payload.startswith("{"):
            return "batch-native"
        return "batch-ngsi-ld" if payload.startswith('[{"id"') else "batch-senml"
    return schema_for(topic, payload)


def test_formats_and_packet_size(tmp):
    """Three sensors in the three formats: one batch stream per format, each batch
    valid against its schema, with its content type and "seqs" user property, and
    none larger than the broker's Maximum Packet Size (4096 bytes, below max_bytes):
    nothing refused, every reading delivered."""
    max_packet = 4096
    sim, buses, sensors = aq_sensors(tmp, 3, 0.1, ["native", "senml", "ngsi-ld"])
    broker = Broker(tmp, extra="max_packet_size %d\n" % max_packet)
    sub = Subscriber(broker, "city/test/#", retained=False)
    props = PropsSubscriber(broker, BATCH_TOPIC)
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    cfg["mqtt"]["batch"] = {"max_readings": 100, "max_bytes": 65536, "max_latency_ms": 1500}
    ctypes = {"batch-native": "application/json", "batch-senml": "application/senml+json",
              "batch-ngsi-ld": "application/ld+json"}
    gw = Gateway(tmp, cfg).start()
    try:
        def every_format():
            names = [batch_schema(t, p) for t, p, _ in sub.received("/batch")]
            return all(names.count(n) >= 3 for n in ctypes) and sub.received("/health")
        wait_for(every_format, 60, "batches of every format")
        check(gw.stop() == 0, "clean stop")
        time.sleep(0.5)
    finally:
        props.stop()
        sub.stop()
        sim.stop()
        broker.stop()
    counts = validate_messages(tmp, sub.received(), batch_schema)
    for name in ("batch-native", "batch-senml", "batch-ngsi-ld"):
        check(counts.get(name, 0) >= 3, "%s batches: %r" % (name, counts))
    largest = 0
    for topic, ctype, user, payload in props.lines:
        name = batch_schema(topic, payload)
        seqs = [s for s, _ in unpack(payload)]
        check(ctype == ctypes[name], "%s content type %r" % (name, ctype))
        check(user == "seqs:%d-%d" % (min(seqs), max(seqs)), "user property %r" % user)
        check(len({sensor for _, sensor in unpack(payload)}) == 1,
              "one format, so one sensor, per batch here")
        size = publish_size(topic, len(payload.encode()), props_len(ctype, "seqs",
                                                                    user[5:]))
        largest = max(largest, size)
        check(size <= max_packet, "a %s batch of %d bytes on the wire" % (name, size))
    check(not quarantine_list(gw), "nothing refused")
    made = status(gw)["next_seq"] - 1
    got = set(batch_seqs(sub))
    missing = sorted(set(range(1, made + 1)) - got - set(s for s, *_ in
                                                         stored_readings(cfg["store"]["path"])))
    check(not missing, "seqs neither delivered nor stored: %r" % missing[:20])
    print("  %r; largest batch %d bytes on the wire (broker limit %d)"
          % (counts, largest, max_packet))


def poison(path, offset_in_row, byte, what):
    """Overwrites one byte of the reading in the middle of the second outbox row (the
    topic's 6th byte, or the payload's 3rd) with the sqlite3 CLI; same length, so the
    row's index still agrees. Returns its seq."""
    db = sqlite3.connect(path)
    first, n, idx = db.execute("SELECT first_seq, n, idx FROM batches WHERE n >= 3"
                               " ORDER BY first_seq LIMIT 1 OFFSET %d"
                               % offset_in_row).fetchone()
    db.close()
    at = 0
    for i in range(n // 2):
        _, topic_len, payload_len = struct.unpack_from("<qII", idx, 16 * i)
        at += topic_len + payload_len
    _, topic_len, _ = struct.unpack_from("<qII", idx, 16 * (n // 2))
    pos = at + (6 if what == "topic" else topic_len + 3)
    subprocess.run(["sqlite3", path,
                    "UPDATE batches SET data = substr(data, 1, %d) || x'%s' || substr(data, %d)"
                    " WHERE first_seq = %d" % (pos, byte, pos + 2, first)], check=True)
    return first + n // 2


def test_damaged_rows_in_a_batch(tmp):
    """A row damaged on disk (cut short: the store's own check), a reading whose payload
    is broken and one whose topic a broker refuses, all inside what would be batches:
    each is set aside in quarantine with its reason, every other reading is delivered,
    the neighbours of the broken ones in batches as usual."""
    sim, buses, sensors = aq_sensors(tmp, 4, 0.05)
    broker = Broker(tmp)
    broker.stop()
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    cfg["mqtt"]["batch"] = {"max_readings": 40, "max_latency_ms": 300}
    path = cfg["store"]["path"]
    gw = Gateway(tmp, cfg).start()
    sub = None
    try:
        wait_for(lambda: os.path.exists(path) and status(gw)["rows"] >= 300, 60,
                 "300 readings stored")
        check(gw.stop() == 0, "clean stop")
        stored = {seq for seq, *_ in stored_readings(path)}
        db = sqlite3.connect(path)
        first_n = db.execute("SELECT n FROM batches ORDER BY first_seq LIMIT 1").fetchone()[0]
        db.close()
        subprocess.run(["sqlite3", path,
                        "UPDATE batches SET data = substr(data, 1, length(data) - 5)"
                        " WHERE first_seq = (SELECT min(first_seq) FROM batches)"], check=True)
        bad_payload = poison(path, 1, "01", "payload")
        bad_topic = poison(path, 2, "01", "topic")
        broker.start()
        sub = Subscriber(broker, "city/test/#", retained=False)
        gw.start()

        def accounted():
            got = set(batch_seqs(sub))
            dead = {d["seq"] for d in quarantine_list(gw)}
            return stored <= got | dead
        wait_for(accounted, 60, "every stored reading delivered or in quarantine")
        check(gw.stop() == 0, "clean stop")
    finally:
        if sub:
            sub.stop()
        sim.stop()
        broker.stop()
    dead = {d["seq"]: d for d in quarantine_list(gw)}
    got = batch_seqs(sub)
    check("damaged row" in dead[bad_payload]["reason"] and
          "not a native reading" in dead[bad_payload]["reason"],
          "the broken payload's reason: %r" % dead[bad_payload])
    check("invalid topic" in dead[bad_topic]["reason"], "the bad topic's reason: %r"
          % dead[bad_topic])
    cut = [s for s, d in dead.items() if "damaged row: its data" in d["reason"]]
    check(len(cut) == first_n, "the row cut short set aside whole: %d of %d" % (len(cut), first_n))
    check(len(dead) == first_n + 2, "nothing else in quarantine: %r" % sorted(dead)[:10])
    check(not set(got) & set(dead), "nothing both delivered and in quarantine")
    for p in (bad_payload, bad_topic):
        check(p - 1 in got and p + 1 in got, "the neighbours of %d delivered" % p)
        near = [b for _, b, _ in sub.received("/batch")
                if p - 1 in [s for s, _ in unpack(b)]]
        check(near and len(unpack(near[0])) > 1, "...in a batch of several")
    check(len(got) == len(set(got)), "no reading delivered twice")
    print("  %d readings: %d in quarantine (%d of the row cut short), the rest in %d batches"
          % (len(stored), len(dead), first_n, len(sub.received("/batch"))))


# The gateway (user gw) may write its status and health, not the batch topic.
ACL = ("topic read city/#\n"
       "user gw\n"
       "topic write city/test/gw-test-1/status\n"
       "topic write city/test/gw-test-1/health\n")


def test_refused_batch(tmp):
    """An ACL that denies the batch topic: on MQTT 5 each batch is refused (PUBACK 0x87),
    so every reading in it goes to quarantine with the reason, none counts as published,
    and the connection stays up."""
    acl = tmp.file("acl", ACL)
    broker = Broker(tmp, extra="acl_file %s\nmax_queued_messages 1000\n" % acl)
    sim, buses, sensors = aq_sensors(tmp, 2, 0.1)
    sub = Subscriber(broker, "city/test/#", retained=False)
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    cfg["mqtt"].update(username="gw", version="5")
    cfg["mqtt"]["batch"] = {"max_readings": 10, "max_latency_ms": 300}
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: os.path.exists(cfg["store"]["path"]) and
                 len(quarantine_list(gw)) >= 40 and sub.received("/health"), 60,
                 "readings refused")
        time.sleep(1.5)
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    dead = quarantine_list(gw)
    check(all("Not authorized (reason 0x87)" in d["reason"] for d in dead),
          "quarantined for the refusal: %r" % dead[0]["reason"])
    check(not sub.received("/batch"), "the broker delivered a batch its ACL denies")
    h = last_health(sub)
    check(h["readings"]["published"] == 0, "refused readings counted published: %r"
          % h["readings"])
    check(h["readings"]["refused"] > 0 and h["mqtt"]["batches"] == 0,
          "health counts refusals, no batch: %r" % h["mqtt"])
    made = status(gw)["next_seq"] - 1
    kept = {d["seq"] for d in dead} | {s for s, *_ in stored_readings(cfg["store"]["path"])}
    check(set(range(1, made + 1)) <= kept, "every reading kept: in quarantine or stored")
    check("lost" not in gw.log_text(), "the connection stayed up")
    refusals = [ln for ln in gw.log_text().splitlines() if "moved to quarantine" in ln]
    check(len(refusals) == 1 and ", sent in a batch on city/test/gw-test-1/batch refused" in
          refusals[0], "one refusal line naming the batch topic the ACL denies: %r" % refusals)
    print("  %d readings refused in batches, in quarantine" % len(dead))


if __name__ == "__main__":
    main([test_outage_and_kills, test_live_latency, test_formats_and_packet_size,
          test_damaged_rows_in_a_batch, test_refused_batch])
