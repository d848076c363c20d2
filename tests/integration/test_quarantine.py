"""A damaged outbox row and a reading whose topic a broker refuses go to quarantine,
with their reason, and every other reading is delivered: no seq unaccounted for, no
busy loop, no log flood. An operator then lists, resends and drops them."""
import json
import os
import sqlite3
import struct
import subprocess
import time

from harness import (CITYGATE, Broker, Gateway, Sim, Subscriber, base_config, check, main,
                     run, stored_readings, wait_for)


def status(cfg_path):
    r = run([CITYGATE, "--status", "-c", cfg_path])
    check(r.returncode == 0, "--status failed: %s" % r.stderr)
    return json.loads(r.stdout)


def quarantine(cfg_path, *args):
    r = run([CITYGATE, "--quarantine"] + list(args) + ["-c", cfg_path])
    check(r.returncode == 0, "--quarantine %s failed: %s" % (" ".join(args), r.stderr))
    return [json.loads(line) for line in r.stdout.splitlines()]


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def poison_topic(path, row, byte):
    """Puts byte (hex) into the topic of a reading in the middle of a row (the row-th with
    3 readings or more), with the sqlite3 CLI; same length, so the row's index still
    agrees. Returns its seq."""
    db = sqlite3.connect(path)
    first, n, idx = db.execute("SELECT first_seq, n, idx FROM batches WHERE n >= 3"
                               " ORDER BY first_seq LIMIT 1 OFFSET %d" % row).fetchone()
    db.close()
    at = 0
    for i in range(n // 2):
        _, topic_len, payload_len = struct.unpack_from("<qII", idx, 16 * i)
        at += topic_len + payload_len
    # SQL's substr() counts blob bytes from 1; byte at+6 is inside "city/t*st/...".
    pos = at + 6
    subprocess.run(["sqlite3", path,
                    "UPDATE batches SET data = substr(data, 1, %d) || x'%s' || substr(data, %d)"
                    " WHERE first_seq = %d" % (pos - 1, byte, pos + 1, first)], check=True)
    return first + n // 2


def test_damaged_row_and_poison(tmp):
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530",
                    "--slave", "3:aqt530", "--slave", "4:aqt530"])
    port = int(sim.endpoints[0][2])
    broker = Broker(tmp)
    broker.stop()  # first every reading stays in the outbox
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = [{"id": "aq-%d" % u, "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": u, "interval_s": 0.05} for u in (1, 2, 3, 4)]
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    path = cfg["store"]["path"]
    gw = Gateway(tmp, cfg).start()
    sub = None
    try:
        wait_for(lambda: gw.proc.poll() is not None or
                 (os.path.exists(path) and status(gw.config_path)["rows"] >= 300), 60,
                 "300 readings stored")
        check(gw.proc.poll() is None, "the gateway runs")
        check(gw.stop() == 0, "clean stop")
        stored = {seq for seq, *_ in stored_readings(path)}
        db = sqlite3.connect(path)
        first_n = db.execute("SELECT n FROM batches ORDER BY first_seq LIMIT 1").fetchone()[0]
        db.close()
        cut_short = min(stored) + first_n - 1  # the reading the damage reaches into

        # The first row's data 5 bytes short of what its index says, with the sqlite3 CLI.
        subprocess.run(["sqlite3", path,
                        "UPDATE batches SET data = substr(data, 1, length(data) - 5)"
                        " WHERE first_seq = (SELECT min(first_seq) FROM batches)"], check=True)
        # Two readings a broker refuses: a control character in one topic (mosquitto
        # drops the connection over it), a byte that is not UTF-8 in another (Paho
        # refuses it; before quarantine the sender resent it in a busy loop).
        poisons = {poison_topic(path, 1, "01"), poison_topic(path, 2, "ff")}

        # Slow polls now, so that the gateway's own CPU time is small beside a busy loop.
        for s in cfg["sensors"]:
            s["interval_s"] = 1
        with open(gw.config_path, "w") as f:
            json.dump(cfg, f)
        broker.start()
        sub = Subscriber(broker, "city/test/#", retained=False)
        gw.start()

        def accounted():
            got = {r["seq"] for _, r, _ in sub.readings()}
            dead = {d["seq"] for d in quarantine(gw.config_path, "list")}
            return stored <= got | dead and not (got & dead)
        wait_for(accounted, 60, "every stored reading delivered or in quarantine")
        dead = quarantine(gw.config_path, "list")
        by_seq = {d["seq"]: d for d in dead}
        for p in poisons:
            check("invalid topic" in by_seq[p]["reason"], "poison reason: %r" % by_seq[p])
        damaged = [d for d in dead if "damaged row" in d["reason"]]
        check(len(damaged) == first_n, "the damaged row's %d readings: %d"
              % (first_n, len(damaged)))
        check(len(dead) == first_n + 2, "nothing else in quarantine: %r" % dead[:3])
        got = [r["seq"] for _, r, _ in sub.readings()]
        check(all(p + 1 in got and p - 1 in got for p in poisons),
              "the poisons' neighbours were delivered")
        check(len(got) == len(set(got)), "no reading delivered twice")

        # A poison row costs nothing while it sits there: CPU and log over a window.
        log_before = len(gw.log_text().splitlines())
        t0, c0 = time.monotonic(), cpu_ticks(gw.proc.pid)
        time.sleep(3)
        t1, c1 = time.monotonic(), cpu_ticks(gw.proc.pid)
        cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
        print("  gateway CPU with the poison in quarantine: %.1f %%" % (100 * cpu))
        check(cpu < 0.05, "CPU %.1f %% with a poison row" % (100 * cpu))
        lines = gw.log_text().splitlines()
        check(len(lines) - log_before <= 3, "log quiet: %r" % lines[log_before:][:5])
        check(not [l for l in lines if "malformed" in l], "no SQLite corruption errors")
        check(len([l for l in lines if "quarantine" in l]) <= 3,
              "each case logged once: %r" % [l for l in lines if "quarantine" in l][:6])

        check(status(gw.config_path)["quarantined"] == first_n + 2,
              "--status counts the quarantine")
        wait_for(lambda: [json.loads(p) for t, p, _ in sub.received("/health")
                          if json.loads(p)["outbox"]["quarantined"] == first_n + 2], 10,
                 "health counting the quarantine")

        # Retry all: the damaged row's readings that lay within its data go out; the
        # poisons come back, still invalid; the one cut short cannot be sent.
        quarantine(gw.config_path, "retry")
        recoverable = {d["seq"] for d in damaged if d["topic"] is not None}
        check(recoverable == set(range(min(stored), cut_short)),
              "the readings within the damaged row's data were recovered")

        def resent():
            got = {r["seq"] for _, r, _ in sub.readings()}
            left = {d["seq"]: d for d in quarantine(gw.config_path, "list")}
            return recoverable <= got and set(left) == poisons | {cut_short} and \
                all(d["action"] is None for d in left.values())
        wait_for(resent, 20, "the retried readings resent")
        for p in poisons:
            r = run([CITYGATE, "--quarantine", "drop", "--seq", str(p), "-c", gw.config_path])
            check(r.returncode == 0 and "citygate: 1 reading marked to drop;" in r.stderr,
                  "one poison marked to drop, said in the singular: %r" % r.stderr)
        wait_for(lambda: len(quarantine(gw.config_path, "list")) == 1, 10, "the poisons dropped")
        check(gw.stop() == 0, "clean stop")
    finally:
        if sub:
            sub.stop()
        sim.stop()
        broker.stop()
    got = {r["seq"] for _, r, _ in sub.readings()}
    check(stored - got == poisons | {cut_short},
          "only the dropped poisons and the unrecoverable reading were not delivered: %r"
          % sorted(stored - got)[:10])
    db = sqlite3.connect(path)
    check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "outbox not corrupted")
    db.close()


if __name__ == "__main__":
    main([test_damaged_row_and_poison])
