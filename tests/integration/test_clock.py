"""A wall clock that cannot be trusted, stepped under the running daemon.

The daemon runs with the LD_PRELOAD shim tests/integration/clock_shim.c (built with the
tests): its wall clock is the real one plus an offset that the test writes to a file,
and the kernel's NTP status it reads says "unsynchronized" until the test says
otherwise. Nothing else is faked: a real mosquitto, citygate-sim, the real daemon.
"""
import json
import os
import re
import struct
import subprocess
import time

from harness import (BIN, CITYGATE, EXAMPLE_PROFILES, Broker, Gateway, Sim, Subscriber, _track,
                     base_config, check, main, stored_readings, validate_messages, wait_for)

SHIM = os.path.join(BIN, "libcg_clock_shim.so")
HOUR_MS = 3600 * 1000


class Clock:
    """The shim's control file: the wall clock's offset and the kernel's NTP word."""

    def __init__(self, tmp):
        self.path = tmp.file("clock-shim")
        self.set(0, True)

    def set(self, offset_ms, synced):
        with open(self.path, "wb") as f:
            f.write(struct.pack("<qq", offset_ms, 1 if synced else 0))

    def step(self, offset_ms, synced):
        """Changes the file in place, as the mapped daemon sees it."""
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, struct.pack("<qq", offset_ms, 1 if synced else 0), 0)
        finally:
            os.close(fd)


class ShimGateway(Gateway):
    """The daemon with the wall-clock shim preloaded."""

    def __init__(self, tmp, config, clock, name="gateway"):
        super().__init__(tmp, config, name)
        self.clock = clock

    def start(self):
        env = dict(os.environ, LD_PRELOAD=SHIM, CG_CLOCK_SHIM=self.clock.path,
                   ASAN_OPTIONS="verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", ""))
        self.log = open(self.log_path, "a")
        self.proc = _track(subprocess.Popen([CITYGATE, "-c", self.config_path],
                                            stdout=self.log, stderr=subprocess.STDOUT,
                                            env=env))
        return self


def status(gw):
    """citygate --status of the gateway's store (read-only, no shim)."""
    r = subprocess.run([CITYGATE, "--status", "-c", gw.config_path], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "--status failed: %s" % r.stderr)
    return json.loads(r.stdout)


def next_seq(gw):
    """The store's next seq, 0 while the daemon has not created it yet."""
    try:
        return status(gw)["next_seq"]
    except AssertionError:
        return 0


def rfc3339_ms(s):
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", s)
    check(m, "malformed ts %r" % s)
    y, mo, d, h, mi, sec, ms = (int(x) for x in m.groups())
    import calendar
    return (calendar.timegm((y, mo, d, h, mi, sec)) * 1000) + ms


def parse(topic, payload):
    """(seq, ts_ms, clock flag or None, format) of a reading in any of the formats."""
    doc = json.loads(payload)
    if isinstance(doc, list):
        recs = {r.get("n"): r for r in doc}
        flag = recs["clock"]["vs"] if "clock" in recs else None
        return int(recs["seq"]["v"]), round(doc[0]["bt"] * 1000), flag, "senml"
    if "@context" in doc:
        flag = doc["clock"]["value"] if "clock" in doc else None
        return (doc["seq"]["value"], rfc3339_ms(doc["dateObserved"]["value"]["@value"]), flag,
                "ngsi-ld")
    return doc["seq"], rfc3339_ms(doc["ts"]), doc.get("clock"), "native"


def is_reading(topic):
    return not any(topic.endswith(leaf) for leaf in ("/health", "/status", "/state"))


def schema_for(topic, payload):
    if topic.endswith("/health"):
        return "health"
    if topic.endswith("/status"):
        return "status"
    fmt = parse(topic, payload)[3]
    return {"senml": "senml", "ngsi-ld": "reading-ngsi-ld"}.get(fmt, "reading-air-quality")


def three_formats(tmp, interval):
    """One AQT530 per format on one TCP endpoint."""
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530",
                    "--slave", "3:aqt530"])
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = [{"id": "aq-" + fmt, "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": i + 1, "interval_s": interval, "format": fmt}
               for i, fmt in enumerate(("native", "ngsi-ld", "senml"))]
    return sim, buses, sensors


def first_deliveries(sub):
    """seq -> (ts_ms, clock flag, format) of each reading's first delivery."""
    readings = {}
    for t, p, _ in sub.received():
        if is_reading(t):
            seq, ts, flag, fmt = parse(t, p)
            readings.setdefault(seq, (ts, flag, fmt))
    return readings


def boot_at_1970(tmp, client_id, **store):
    """The clock at 1970-01-01T00:00:01, NTP unsynchronized, the broker down (after a
    subscriber with a persistent session has subscribed), three formats at 0.2 s and
    gateway.clock ntp. Returns (clock, broker, subscriber, sim, config)."""
    clock = Clock(tmp)
    clock.set(-int(time.time() * 1000) + 1000, False)
    broker = Broker(tmp)
    sub = Subscriber(broker, "city/test/gw-test-1/#", client_id=client_id, retained=False)
    broker.stop()
    sim, buses, sensors = three_formats(tmp, 0.2)
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1, store=store)
    cfg["gateway"]["clock"] = "ntp"
    cfg["gateway"]["location"] = {"lat": 37.7519, "lon": 128.8761}
    return clock, broker, sub, sim, cfg


def test_boot_1970_broker_down_then_ntp(tmp):
    """Boots at 1970 with NTP unsynchronized and the broker down: a first run is stopped
    (its readings cannot be corrected), a second one sees the clock stepped to now and
    synchronized. With max_age_s 30 the age limit runs every 3 s; none of it may delete
    a reading, every reading made before the step must be flagged or corrected, and
    every reading of the second run corrected to its real time."""
    clock, broker, sub, sim, cfg = boot_at_1970(tmp, "cg-clock-sub", max_age_s=30)
    try:
        gw = ShimGateway(tmp, cfg, clock, name="run1").start()
        wait_for(lambda: next_seq(gw) > 15, 30, "readings of the first run")
        check(gw.stop() == 0, "clean stop of the first run")
        first_b = status(gw)["next_seq"]
        check("not trusted (unsynced" in gw.log_text() or "not trusted (before-build"
              in gw.log_text(), "the untrusted clock is logged at start")

        gw = ShimGateway(tmp, cfg, clock, name="run2").start()
        started_real = time.time() * 1000
        wait_for(lambda: status(gw)["next_seq"] > first_b + 40, 30,
                 "readings of the second run before the step")
        before_step = status(gw)["next_seq"]
        step_real = time.time() * 1000
        clock.step(0, True)
        wait_for(lambda: ", trusted (synced" in gw.log_text(), 20, "the step noticed")
        after = status(gw)["next_seq"]
        # 150 readings at 15 a second outlast three runs of the age limit.
        wait_for(lambda: status(gw)["next_seq"] > after + 150, 60,
                 "readings after the step while the age limit runs")
        check(status(gw)["dropped"] == 0, "the age limit deleted readings after the step")
        broker.start()
        wait_for(lambda: status(gw)["rows"] < 30, 60, "the backlog drained")
        wait_for(lambda: any(t.endswith("/health") and json.loads(p)["clock"]["trusted"]
                             for t, p, _ in sub.received()), 20, "a health message")
        check(gw.stop() == 0, "clean stop")
        final = status(gw)
        # Delivered, or still held for the next start: either way not lost.
        held = {s for s, _, _, _ in stored_readings(cfg["store"]["path"])}

        def accounted():
            got = first_deliveries(sub)
            return all(s in got or s in held for s in range(1, final["next_seq"]))
        wait_for(accounted, 30, "every reading at the subscriber")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    readings = first_deliveries(sub)
    lost = [s for s in range(1, final["next_seq"]) if s not in readings and s not in held]
    check(not lost, "%d readings lost: %s" % (len(lost), lost[:20]))
    check(final["dropped"] == 0, "outbox.dropped is %d" % final["dropped"])
    run1 = range(1, first_b)
    pre = range(first_b, before_step)
    for s in run1:
        ts, flag, fmt = readings[s]
        check(flag == "unsynced", "seq %d of the stopped run: flag %r" % (s, flag))
    for s in pre:
        ts, flag, fmt = readings[s]
        check(flag == "corrected", "seq %d made before the step: flag %r" % (s, flag))
        check(started_real - 2000 <= ts <= step_real + 1000,
              "seq %d (%s): corrected ts %d is not when it was made (%d..%d)"
              % (s, fmt, ts, started_real, step_real))
    # However it was made, an unflagged reading has a real ts.
    for s, (ts, flag, fmt) in readings.items():
        check(flag in ("unsynced", "corrected") or ts >= step_real - 1000,
              "seq %d (%s) has ts %d without a flag" % (s, fmt, ts))
        check(flag != "unsynced" or s < first_b,
              "seq %d of the second run was published uncorrected" % s)
    made_before = before_step - 1
    flagged = sum(1 for s in range(1, before_step) if readings[s][1] == "unsynced")
    corrected = sum(1 for s in range(1, before_step) if readings[s][1] == "corrected")
    check(flagged + corrected == made_before, "every reading before the step flagged")
    fmts = {readings[s][2] for s in pre}
    check(fmts == {"native", "ngsi-ld", "senml"}, "corrected in every format: %r" % fmts)
    # Sensor states are test_avail's; one sensor here is NGSI-LD (a Device entity).
    validate_messages(tmp, [m for m in sub.received() if not m[0].endswith("/state")],
                      schema_for)
    print("  boot at 1970, broker down, step to now: %d readings made before the step "
          "(%d in a run that was stopped), %d flagged, %d corrected, %d lost; %d in all"
          % (made_before, first_b - 1, flagged, corrected, len(lost), final["next_seq"] - 1))


def test_restart_after_step(tmp):
    """The issue's case as a restart: readings made at 1970 with the broker down, the
    gateway stopped, NTP steps the clock to now, the gateway starts again (the age limit
    runs at start) and the broker comes back: none deleted, all published with their
    flag; they cannot be corrected, their run is over."""
    clock, broker, sub, sim, cfg = boot_at_1970(tmp, "cg-clock-sub3", max_age_s=30)
    try:
        gw = ShimGateway(tmp, cfg, clock, name="before").start()
        wait_for(lambda: next_seq(gw) > 44, 30, "readings at 1970")
        check(gw.stop() == 0, "clean stop")
        made = status(gw)["next_seq"] - 1
        clock.set(0, True)
        gw = ShimGateway(tmp, cfg, clock, name="after").start()
        wait_for(lambda: "trusted (synced" in gw.log_text(), 20, "the second start")
        broker.start()
        wait_for(lambda: set(first_deliveries(sub)) >= set(range(1, made + 1)), 30,
                 "the readings made at 1970")
        check(gw.stop() == 0, "clean stop")
        final = status(gw)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    readings = first_deliveries(sub)
    lost = [s for s in range(1, made + 1) if s not in readings]
    check(not lost and final["dropped"] == 0, "%d lost, %d dropped" % (len(lost),
                                                                     final["dropped"]))
    unflagged = [s for s in range(1, made + 1) if readings[s][1] != "unsynced"]
    check(not unflagged, "readings of the stopped run without the flag: %r" % unflagged)
    print("  1970 then restart after the step: %d made at 1970, %d flagged, %d lost"
          % (made, made - len(unflagged), len(lost)))


def test_step_back_one_hour(tmp):
    """A synchronized clock stepped back by an hour and 0.7 s while the broker is down:
    the store's clock does not go back, health ages stay >= 0, seq goes on, readings
    made after the step are flagged (behind the newest ts), and an aligned sensor is
    back on its grid of the stepped clock within one interval."""
    clock = Clock(tmp)
    broker = Broker(tmp)
    sim = Sim(tmp, ["--profile-dir", EXAMPLE_PROFILES, "--tcp", "0",
                    "--slave", "1:traffic-counter", "--slave", "2:aqt530"])
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = [{"id": "lanes-1", "bus": "lan", "driver": "modbus", "profile": "traffic-counter",
                "unit_id": 1, "interval_s": 2, "aligned": True},
               {"id": "aq-1", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": 2, "interval_s": 0.25}]
    # The backlog drains at 10 a second, so that health reports it while rows made
    # before the step are held.
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1,
                      mqtt={"replay_rate": 10})
    cfg["gateway"]["clock"] = "ntp"
    cfg["profile_dirs"] = [EXAMPLE_PROFILES]
    sub = Subscriber(broker, "city/test/gw-test-1/#", client_id="cg-clock-sub2",
                     retained=False)
    gw = ShimGateway(tmp, cfg, clock).start()
    store = cfg["store"]["path"]
    try:
        def lanes():
            return [json.loads(p) for t, p, _ in sub.received() if "/traffic/" in t]
        wait_for(lambda: len(lanes()) >= 4, 30, "traffic readings before the step")
        broker.stop()
        held_from = next_seq(gw)
        wait_for(lambda: next_seq(gw) > held_from + 20, 30, "readings held before the step")
        seq_at_step = next_seq(gw)
        clock.step(-HOUR_MS - 700, True)
        wait_for(lambda: "not trusted (behind-store" in gw.log_text()
                 or "not trusted (before-build" in gw.log_text(), 20, "the step noticed")
        # Rows staged before the step may be committed after the line: the first
        # commit after it has them all, and the seqs after that were staged later.
        noticed = next_seq(gw)
        after = wait_for(lambda: next_seq(gw) > noticed and next_seq(gw), 30, "a commit")
        wait_for(lambda: status(gw)["next_seq"] > after + 40, 30, "readings after the step")
        held = stored_readings(store)
        created = [c for _, _, _, c in held]
        check(len(held) > 40 and held[0][0] < seq_at_step - 10,
              "rows from before and after the step are held")
        check(created == sorted(created), "the store's clock went back with the wall clock")
        broker.start()
        back = time.monotonic()
        wait_for(lambda: status(gw)["rows"] < 20, 60, "the backlog drained")
        wait_for(lambda: sum(1 for t, _, at in sub.received()
                             if t.endswith("/health") and at > back) >= 2,
                 30, "health after the step")
        last_ts = max(rfc3339_ms(d["ts"]) for d in lanes())
        wait_for(lambda: sum(1 for d in lanes() if rfc3339_ms(d["ts"]) < last_ts - HOUR_MS / 2)
                 >= 6, 30, "traffic readings stamped on the stepped clock")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    healths = [json.loads(p) for t, p, _ in sub.received() if t.endswith("/health")]
    ages = [h["outbox"]["oldest_age_s"] for h in healths]
    check(all(a >= 0 for a in ages), "negative ages: %r" % ages)
    check(max(ages) > 0, "no health while the backlog was held: %r" % ages)
    check(any(not h["clock"]["trusted"] for h in healths), "health says the clock is wrong")
    readings = [json.loads(p) for t, p, _ in sub.received() if is_reading(t)]
    seqs = sorted({r["seq"] for r in readings})
    check(seqs == list(range(seqs[0], seqs[-1] + 1)), "seq has gaps")
    # In seq order, ts drops once by the step and is flagged from there on.
    by_seq = {}
    for r in readings:
        by_seq.setdefault(r["seq"], r)
    stepped = [r for s, r in sorted(by_seq.items()) if s >= after]
    check(all(r.get("clock") == "unsynced" for r in stepped),
          "readings after the step are flagged")
    # Lane 1 of the aligned sensor, stamped on the stepped clock: on its grid of 2 s,
    # except at most the first one (its poll was due on the clock before the step).
    lane1 = sorted((r["seq"], rfc3339_ms(r["ts"])) for r in readings
                   if r["sensor"] == "lanes-1" and r["values"]["laneId"] == 1)
    after_step = [ts for s, ts in lane1 if ts < last_ts - HOUR_MS / 2]
    check(len(after_step) >= 3, "traffic after the step")
    off_grid = [ts for ts in after_step[1:] if ts % 2000]
    check(not off_grid, "aligned readings off the grid after the step: %r" % off_grid)
    print("  step back 1 h: %d readings, seq %d..%d without gaps, %d health messages with "
          "ages %d..%d s, %d aligned readings after the step, first %s the grid"
          % (len(by_seq), seqs[0], seqs[-1], len(healths),
             min(h["outbox"]["oldest_age_s"] for h in healths),
             max(h["outbox"]["oldest_age_s"] for h in healths), len(after_step),
             "on" if after_step[0] % 2000 == 0 else "off"))


if __name__ == "__main__":
    main([test_boot_1970_broker_down_then_ntp, test_restart_after_step, test_step_back_one_hour])
