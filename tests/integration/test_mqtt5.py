"""What a broker refuses, against a real mosquitto set up for each case (an ACL
file, max_packet_size, a session taken over, a broker that speaks only 3.1.1):
every reading is either delivered or still in the outbox with its refusal
counted, none is counted as delivered that was not, and the log says why."""
import json
import socket
import subprocess
import threading
import time

from harness import (CITYGATE, Broker, Gateway, Link, Sim, Subscriber, _track, base_config,
                     check, main, run, stored_readings, validate_messages, wait_for)

# mosquitto 2.0 with max_queued_messages 0 (the harness's default, "no limit")
# closes the connection after every PUBLISH it refuses: its guard against a
# client sending bad messages compares the client's queue with that limit.
# The cases below give the broker its usual limit, as a deployment has.
QUEUE_LIMIT = "max_queued_messages 1000\n"

# The gateway's user: mosquitto applies the ACL's "user" block to it, and the
# lines before any "user" to anonymous clients (the test's subscriber).
ACL = ("topic read city/#\n"
       "user gw\n"
       "topic write city/test/gw-test-1/status\n"
       "topic write city/test/gw-test-1/health\n"
       "topic write city/test/gw-test-1/air-quality/aq-001\n")


def sensors(tmp, n=2, formats=None):
    """n simulated AQT530s on one TCP endpoint, every 0.1 s."""
    args = ["--tcp", "0"]
    for i in range(n):
        args += ["--slave", "%d:aqt530" % (i + 1)]
    sim = Sim(tmp, args)
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": 300}]
    out = [{"id": "aq-%03d" % (i + 1), "bus": "lan", "driver": "modbus", "profile": "aqt530",
            "unit_id": i + 1, "interval_s": 0.1} for i in range(n)]
    for s, f in zip(out, formats or []):
        if f:
            s["format"] = f
    return sim, buses, out


def status(gw):
    r = run([CITYGATE, "--status", "-c", gw.config_path])
    check(r.returncode == 0, "--status failed: %s" % r.stderr)
    return json.loads(r.stdout)


def account(gw, sub, cfg, reason=None):
    """After a clean stop: every committed seq (1 .. next_seq - 1) is delivered,
    still stored, or in quarantine (with a reason that holds `reason`, when
    given); returns (delivered seqs by sensor, kept seqs by sensor: stored or in
    quarantine, unaccounted seqs)."""
    made = status(gw)["next_seq"] - 1
    delivered, kept = {}, {}
    for _, r, _ in sub.readings():
        delivered.setdefault(r["sensor"], set()).add(r["seq"])
    for seq, topic, _, _ in stored_readings(cfg["store"]["path"]):
        kept.setdefault(topic.rsplit("/", 1)[1], set()).add(seq)
    r = run([CITYGATE, "--quarantine", "list", "-c", gw.config_path])
    check(r.returncode == 0, "--quarantine list: %s" % r.stderr)
    for d in (json.loads(line) for line in r.stdout.splitlines()):
        check(reason is None or reason in d["reason"], "quarantined for %r" % d["reason"])
        kept.setdefault(d["topic"].rsplit("/", 1)[1], set()).add(d["seq"])
    seen = set().union(*delivered.values(), *kept.values())
    return delivered, kept, sorted(set(range(1, made + 1)) - seen)


def last_health(sub):
    h = sub.received("/health")
    check(h, "no health message")
    return json.loads(h[-1][1])


def run_for(gw, sub, seconds, what):
    """Runs until readings flow and a health message came, then seconds more, then stops."""
    wait_for(lambda: sub.readings() and sub.received("/health"), 30, what)
    time.sleep(seconds)
    check(gw.stop() == 0, "clean stop")
    time.sleep(0.5)


def run_case(tmp, broker_conf, formats=None, **mqtt):
    """mosquitto with broker_conf, two sensors (in formats), the gateway with
    these mqtt keys until readings and health flow, then 3 s more."""
    broker = Broker(tmp, extra=broker_conf)
    sim, buses, sens = sensors(tmp, formats=formats)
    sub = Subscriber(broker, "city/test/#")
    cfg = base_config(tmp, broker, buses, sens, health_interval_s=1)
    cfg["mqtt"].update(mqtt)
    gw = Gateway(tmp, cfg).start()
    try:
        run_for(gw, sub, 3, "readings and health")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    return gw, sub, cfg


def acl_case(tmp, version):
    acl = tmp.file("acl", ACL)
    return run_case(tmp, "acl_file %s\n%s" % (acl, QUEUE_LIMIT), username="gw",
                    version=version)


def test_acl_refusal_v5(tmp):
    """The ACL lets aq-001 through and not aq-002: on MQTT 5 each aq-002
    reading is refused (PUBACK 0x87), not counted as published, moved to
    quarantine with its reason, counted in health, logged once with its topic."""
    gw, sub, cfg = acl_case(tmp, "5")
    delivered, stored, unaccounted = account(gw, sub, cfg, "Not authorized (reason 0x87)")
    check(not unaccounted, "%d seqs neither delivered nor stored: %s"
          % (len(unaccounted), unaccounted[:20]))
    check("aq-002" not in delivered, "the broker delivered a reading its ACL denies")
    check(len(delivered.get("aq-001", ())) > 20, "aq-001's readings delivered")
    check(len(stored.get("aq-002", ())) > 20, "aq-002's refused readings kept in quarantine")
    check(not stored.get("aq-001"), "aq-001 rows left in the outbox: %s" % stored.get("aq-001"))
    h = last_health(sub)
    check(h["mqtt"]["version"] == "5", "health says MQTT %s" % h["mqtt"]["version"])
    refused = h["mqtt"]["refused"].get("not-authorized", 0)
    check(refused > 0 and h["readings"]["refused"] == refused,
          "health counts the refusals by reason: %r" % h["mqtt"])
    check(h["readings"]["published"] <= len(delivered["aq-001"]),
          "health counts %d published, only %d were delivered"
          % (h["readings"]["published"], len(delivered["aq-001"])))
    log = gw.log_text()
    lines = [l for l in log.splitlines() if "refused" in l and "reading seq" in l]
    check(len(lines) == 1, "one refusal line, not %d:\n%s" % (len(lines), "\n".join(lines[:5])))
    check("city/test/gw-test-1/air-quality/aq-002" in lines[0] and "Not authorized" in lines[0],
          "the line names topic and reason: %s" % lines[0])
    check("lost" not in log, "the connection stayed up:\n%s" % log)
    validate_messages(tmp, sub.received())
    print("  acl v5: aq-001 %d delivered; aq-002 %d refused (health %d), %d kept; 0 unaccounted"
          % (len(delivered["aq-001"]), len(stored["aq-002"]), refused, len(stored["aq-002"])))


def test_acl_hidden_v311(tmp):
    """The same ACL on MQTT 3.1.1: the broker acknowledges what it drops, so
    aq-002's readings are counted as published and gone from the outbox,
    delivered nowhere. This is the hole MQTT 5 closes; citygate warns about it
    at start when 3.1.1 is chosen with a user name."""
    gw, sub, cfg = acl_case(tmp, "3.1.1")
    delivered, stored, unaccounted = account(gw, sub, cfg)
    check("aq-002" not in delivered and not stored.get("aq-002"),
          "3.1.1 hides refusals: aq-002 neither delivered nor kept")
    check(len(unaccounted) > 20, "aq-002's readings are lost on 3.1.1 (%d)" % len(unaccounted))
    log = gw.log_text()
    check(log.count("version 3.1.1 with a user name") == 1, "the 3.1.1 warning, once")
    print("  acl 3.1.1: aq-001 %d delivered; %d aq-002 readings acknowledged and lost, as "
          "documented" % (len(delivered.get("aq-001", ())), len(unaccounted)))


def test_max_packet_size(tmp):
    """mosquitto takes packets up to 1100 bytes: the native readings (about
    460) go, the NGSI-LD ones (about 1,500) never leave the outbox, so the
    broker never closes the connection over them."""
    gw, sub, cfg = run_case(tmp, "max_packet_size 1100\n", formats=[None, "ngsi-ld"])
    delivered, stored, unaccounted = account(gw, sub, cfg, "Maximum Packet Size")
    check(not unaccounted, "%d seqs unaccounted: %s" % (len(unaccounted), unaccounted[:20]))
    check("aq-002" not in delivered, "an NGSI-LD reading got through")
    check(len(delivered.get("aq-001", ())) > 20 and len(stored.get("aq-002", ())) > 20,
          "native delivered, NGSI-LD kept: %r / %r"
          % ({k: len(v) for k, v in delivered.items()}, {k: len(v) for k, v in stored.items()}))
    h = last_health(sub)
    check(h["mqtt"]["refused"].get("packet-too-large", 0) > 0, "counted: %r" % h["mqtt"])
    check(h["mqtt"]["reconnects"] == 0, "no reconnect")
    log = gw.log_text()
    check("lost" not in log, "the connection stayed up:\n%s" % log)
    check("; packets of 1100 bytes at most;" in log, "the broker's limit is logged at connect")
    lines = [l for l in log.splitlines() if "Maximum Packet Size" in l]
    check(len(lines) == 1 and "aq-002" in lines[0], "one line naming the topic: %r" % lines)
    print("  max_packet_size 1100: %d delivered, %d kept as too large, 0 reconnects, "
          "0 unaccounted" % (len(delivered["aq-001"]), len(stored["aq-002"])))


class Only311(Link):
    """A relay in front of mosquitto that answers an MQTT 5 CONNECT as a
    broker that speaks only 3.1.1 does (RabbitMQ 3.10's plugin, aedes): a
    3.1.1 CONNACK with return code 1, "unacceptable protocol version", then
    it closes. Any other connection goes through to mosquitto untouched."""

    def __init__(self, broker):
        self.refused = 0
        self.passed = 0
        super().__init__(broker.port)

    def _relay(self, client):
        # Fixed header, remaining length (1 to 4 bytes), protocol name
        # (length and "MQTT"), protocol level: read without taking them.
        head = b""
        for _ in range(100):
            head = client.recv(12, socket.MSG_PEEK)
            if len(head) >= 12 or not head:
                break
            time.sleep(0.01)
        if len(head) < 12:
            client.close()
            return
        i = 1
        while head[i] & 0x80:
            i += 1
        if head[i + 1 + 6] == 5:
            self.refused += 1
            client.sendall(b"\x20\x02\x00\x01")
            client.close()
            return
        self.passed += 1
        super()._relay(client)


def test_auto_falls_back_to_311(tmp):
    """mqtt.version auto against a broker that refuses MQTT 5: one warning,
    then MQTT 3.1.1, and the readings flow."""
    broker = Broker(tmp)
    gate = Only311(broker)
    sim, buses, sens = sensors(tmp, n=1)
    sub = Subscriber(broker, "city/test/#")
    cfg = base_config(tmp, broker, buses, sens, health_interval_s=1)
    cfg["mqtt"]["uri"] = "tcp://127.0.0.1:%d" % gate.port
    gw = Gateway(tmp, cfg).start()
    try:
        run_for(gw, sub, 1, "readings after the fall-back")
    finally:
        gate.close()
        sub.stop()
        sim.stop()
        broker.stop()
    log = gw.log_text()
    check(log.count("does not speak MQTT 5") == 1, "the fall-back warned once:\n%s" % log)
    check("(MQTT 3.1.1;" in log, "connected with 3.1.1")
    check(gate.refused == 1 and gate.passed >= 1, "one MQTT 5 attempt (%d), then 3.1.1 (%d)"
          % (gate.refused, gate.passed))
    check(last_health(sub)["mqtt"]["version"] == "3.1.1", "health says 3.1.1")
    delivered, stored, unaccounted = account(gw, sub, cfg)
    check(not unaccounted, "%d seqs unaccounted" % len(unaccounted))
    print("  auto: 1 MQTT 5 connect refused, then 3.1.1; %d readings delivered"
          % len(delivered.get("aq-001", ())))


class PropsSubscriber:
    """mosquitto_sub speaking MQTT 5, printing each message's properties."""

    def __init__(self, broker, topic):
        self.lines = []
        self.proc = _track(subprocess.Popen(
            ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(broker.port),
             "-t", topic, "-q", "1", "-F", "%t\t%C\t%F\t%P\t%E\t%p"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1))
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n").split("\t"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def test_properties_receive_maximum_and_will(tmp):
    """Each format carries its content type, the payload format indicator
    (1, UTF-8), seq as a user property, and the configured message expiry; a
    broker's Receive Maximum (mosquitto's max_inflight_messages, 5) narrows
    the window so that the broker is never sent more; the Last Will, sent
    after a SIGKILL, has no ts and is a valid status."""
    broker = Broker(tmp, extra="max_inflight_messages 5\n")
    sim, buses, sens = sensors(tmp, n=3, formats=[None, "ngsi-ld", "senml"])
    sub = PropsSubscriber(broker, "city/test/#")
    cfg = base_config(tmp, broker, buses, sens)
    cfg["mqtt"].update({"message_expiry_s": {"air-quality": 600}, "inflight": 64})
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: len(sub.lines) > 60, 30, "readings")
        gw.kill()
        wait_for(lambda: any(l[0].endswith("/status") and '"offline"' in l[-1]
                             for l in sub.lines), 30, "the Last Will")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    log = gw.log_text()
    check("; 5 in flight; window 3)" in log, "Receive Maximum honoured:\n%s" % log)
    check("lost" not in log, "the connection stayed up:\n%s" % log)
    types = {}
    for topic, ctype, pfi, user, expiry, payload in sub.lines:
        if topic.endswith("/status"):
            check(ctype == "application/json" and pfi == "1", "status properties")
            continue
        if topic.endswith("/health"):
            continue
        if topic.endswith("/state"):
            # A sensor state is not a reading: no seq, no message expiry.
            check(pfi == "1" and "seq" not in (user or "") and not expiry,
                  "sensor state properties %r %r %r" % (pfi, user, expiry))
            continue
        reading = json.loads(payload)
        types.setdefault(topic.rsplit("/", 1)[1], set()).add(ctype)
        check(pfi == "1", "payload format indicator %r" % pfi)
        check(user.startswith("seq:"), "seq user property %r" % user)
        if isinstance(reading, dict) and "gateway" in reading:
            check(user == "seq:%d" % reading["seq"], "user property %r, payload seq %d"
                  % (user, reading["seq"]))
        check(expiry and 0 < int(expiry) <= 600, "message expiry %r" % expiry)
    check(types == {"aq-001": {"application/json"}, "aq-002": {"application/ld+json"},
                    "aq-003": {"application/senml+json"}}, "content types %r" % types)
    will = [l[-1] for l in sub.lines if l[0].endswith("/status")][-1]
    check("ts" not in json.loads(will), "the Last Will has no ts: %s" % will)
    validate_messages(tmp, [("city/test/gw-test-1/status", will)])
    print("  properties: %d messages; content types %r; window 3 for Receive Maximum 5; "
          "will %s" % (len(sub.lines), {k: sorted(v)[0] for k, v in types.items()}, will))


def test_weather_station(tmp):
    """A MetSENS600 (2-register floats) publishes kind weather on its own topic
    level, valid by reading-weather, with the weather message expiry and none
    for the kind left out of mqtt.message_expiry_s."""
    broker = Broker(tmp)
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:metsens600"])
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": 300}]
    sens = [{"id": "aq-001", "bus": "lan", "driver": "modbus", "profile": "aqt530",
             "unit_id": 1, "interval_s": 0.2},
            {"id": "ws-001", "bus": "lan", "driver": "modbus", "profile": "metsens600",
             "unit_id": 2, "interval_s": 0.2}]
    sub = PropsSubscriber(broker, "city/test/gw-test-1/+/+")
    cfg = base_config(tmp, broker, buses, sens)
    cfg["mqtt"]["message_expiry_s"] = {"weather": 900}
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: sum(l[0].endswith("/weather/ws-001") for l in sub.lines) >= 5 and
                 sum(l[0].endswith("/air-quality/aq-001") for l in sub.lines) >= 5, 30,
                 "readings from both sensors")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    weather = [(l[0], l[-1]) for l in sub.lines if l[0].endswith("/weather/ws-001")]
    for topic, ctype, pfi, user, expiry, payload in sub.lines:
        if topic.endswith("/weather/ws-001"):
            check(expiry and 600 < int(expiry) <= 900, "weather expiry %r" % expiry)
        else:
            check(not expiry, "%s: no expiry configured, got %r" % (topic, expiry))
    counts = validate_messages(tmp, weather)
    check(counts == {"reading-weather": len(weather)}, "validated %r" % counts)
    for _, payload in weather:
        r = json.loads(payload)
        v, u = r["values"], r["units"]
        check(r["kind"] == "weather" and r["quality"] == "ok", "%r" % r)
        check(0 <= v["windSpeed"] <= 12 and 0 <= v["windDirection"] <= 360 and
              -10 <= v["dewPoint"] <= 15 and 990 <= v["atmosphericPressure"] <= 1030,
              "floats decoded in the simulated ranges: %r" % v)
        check(u == {"windSpeed": "m/s", "windDirection": "deg", "gustSpeed": "m/s",
                    "temperature": "Cel", "relativeHumidity": "%RH", "dewPoint": "Cel",
                    "atmosphericPressure": "hPa", "precipitationTotal": "mm"}, "units %r" % u)
    print("  %d weather readings, expiry %s s" % (len(weather), [l[4] for l in sub.lines
                                                         if "/weather/" in l[0]][0]))


def test_session_kept(tmp):
    """With mqtt.session_expiry_s, an outage of the gateway's uplink shorter
    than it keeps the MQTT session (the broker says so in its CONNACK); what
    was in flight is completed or resent, and nothing is unaccounted."""
    broker = Broker(tmp)
    link = Link(broker.port)
    sim, buses, sens = sensors(tmp, n=4)
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    cfg = base_config(tmp, broker, buses, sens)
    cfg["mqtt"].update({"uri": "tcp://127.0.0.1:%d" % link.port, "session_expiry_s": 300})
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: len(sub.readings()) > 50, 30, "readings")
        for _ in range(2):
            link.cut()
            time.sleep(1)
            link.restore()
            n = gw.log_text().count("session kept")
            wait_for(lambda: gw.log_text().count("session kept") > n, 20, "a kept session")
            time.sleep(1)
        check(gw.stop() == 0, "clean stop")
        time.sleep(0.5)
    finally:
        link.close()
        sub.stop()
        sim.stop()
        broker.stop()
    delivered, stored, unaccounted = account(gw, sub, cfg)
    check(not unaccounted, "%d seqs unaccounted: %s" % (len(unaccounted), unaccounted[:20]))
    log = gw.log_text()
    check(log.count("session kept") == 2, "both reconnects kept the session:\n%s" % log)
    print("  session kept over 2 outages: %d delivered, 0 unaccounted"
          % sum(len(v) for v in delivered.values()))


if __name__ == "__main__":
    main([test_acl_refusal_v5, test_acl_hidden_v311, test_max_packet_size,
          test_auto_falls_back_to_311, test_properties_receive_maximum_and_will,
          test_session_kept, test_weather_station])
