"""A full disk is logged once and survived; storing resumes when space returns."""
import os
import sqlite3
import subprocess
import time

from harness import (Broker, Gateway, Sim, Subscriber, base_config, check, main, seq_report,
                     wait_for)


def test_disk_full(tmp):
    if os.geteuid() != 0:
        print("  skipped: mounting a small tmpfs needs root")
        return
    mnt = os.path.join(tmp.path, "small")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", mnt], check=True)
    try:
        _run(tmp, mnt)
    finally:
        subprocess.run(["umount", "-l", mnt])


def _run(tmp, mnt):
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530", "--slave", "3:aqt530", "--slave", "4:aqt530"])
    port = int(sim.endpoints[0][2])
    broker = Broker(tmp)
    broker.stop()  # no uplink: every reading has to stay in the outbox
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = [{"id": "aq-%d" % u, "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": u, "interval_s": 0.05} for u in (1, 2, 3, 4)]
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["store"]["path"] = os.path.join(mnt, "outbox.db")
    gw = Gateway(tmp, cfg).start()
    sub = None
    try:
        wait_for(lambda: "disk is full" in gw.log_text(), 60, "the full disk to be logged")
        time.sleep(2)
        check(gw.proc.poll() is None, "the gateway survives a full disk")
        subprocess.run(["mount", "-o", "remount,size=16m", mnt], check=True)
        wait_for(lambda: "accepting rows again" in gw.log_text(), 20, "storing to resume")
        broker.start()
        sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
        time.sleep(8)
        check(gw.stop() == 0, "clean stop")
    finally:
        if sub:
            sub.stop()
        sim.stop()
        broker.stop()
    log = gw.log_text()
    full_lines = [l for l in log.splitlines() if "full" in l.lower()]
    check(len(full_lines) <= 2, "a full disk is logged once, not per attempt: %r"
          % full_lines[:5])
    db = sqlite3.connect(cfg["store"]["path"])
    check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "outbox not corrupted")
    db.close()
    readings = sub.readings()
    unique, missing, dups = seq_report(readings)
    check(len(unique) > 100, "readings delivered after the disk had room again")
    check(not missing, "%d seq missing: %s" % (len(missing), missing[:10]))


if __name__ == "__main__":
    main([test_disk_full])
