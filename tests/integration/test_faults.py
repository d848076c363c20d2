"""Bus faults are counted and logged once, and never hold up the other sensors."""
import json
import os
import time

from harness import (Broker, Gateway, Sim, Subscriber, base_config, check, main, wait_for)


def gaps(readings, sensor):
    """Seconds between consecutive measurements of one sensor (from ts)."""
    from datetime import datetime
    stamps = [datetime.strptime(r["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
              for _, r, _ in readings if r["sensor"] == sensor]
    return [b - a for a, b in zip(stamps, stamps[1:])]


def test_faulty_slaves_do_not_delay_others(tmp):
    """One RTU line: two good slaves and a silent, an exception, a CRC-corrupting
    and a too slow one."""
    link = os.path.join(tmp.path, "ttyRS485")
    sim = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530", "--slave", "2:aqt530:silent",
                    "--slave", "3:aqt530", "--slave", "4:aqt530:exception",
                    "--slave", "5:aqt530:crc", "--slave", "6:aqt530:slow=600"])
    broker = Broker(tmp)
    timeout = 0.3
    interval = 1.0
    buses = [{"id": "rs485-1", "type": "modbus-rtu", "device": link, "baud": 9600,
              "timeout_ms": int(timeout * 1000), "backoff_max_s": 8}]
    names = {1: "good-1", 2: "silent", 3: "good-3", 4: "exception", 5: "crc", 6: "slow"}
    sensors = [{"id": names[u], "bus": "rs485-1", "driver": "modbus", "profile": "aqt530",
                "unit_id": u, "interval_s": interval} for u in names]
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors, health_interval_s=1)).start()
    try:
        time.sleep(15)
        health = wait_for(lambda: sub.received("/health"), 10, "health")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()

    readings = sub.readings()
    by_sensor = {}
    for _, r, _ in readings:
        by_sensor[r["sensor"]] = by_sensor.get(r["sensor"], 0) + 1
    check(set(by_sensor) == {"good-1", "good-3"}, "only the good slaves answer: %r" % by_sensor)
    # 15 s at 1 s: about 15 polls each. A faulty neighbour costs at most one
    # timeout per attempt, and its attempts thin out with the back-off.
    for s in ("good-1", "good-3"):
        check(by_sensor[s] >= 11, "%s made only %d readings in 15 s" % (s, by_sensor[s]))
        worst = max(gaps(readings, s))
        check(worst < interval + 3 * timeout + 0.5,
              "%s waited %.2f s between polls (interval %.1f, timeout %.1f)"
              % (s, worst, interval, timeout))

    health = json.loads(sub.received("/health")[-1][1])
    st = {s["id"]: s for b in health["buses"] for s in b["sensors"]}
    check(st["silent"]["timeouts"] >= 2 and st["silent"]["ok"] == 0, "silent %r" % st["silent"])
    check(st["silent"]["polls"] <= 8, "silent slave backed off: %d polls in 15 s"
          % st["silent"]["polls"])
    check(st["exception"]["exceptions"] >= 2, "exceptions counted %r" % st["exception"])
    check(st["crc"]["crc_errors"] >= 2, "CRC errors counted %r" % st["crc"])
    # A slave slower than the timeout: its answers come too late, counted as
    # timeouts; where a late answer meets the next request it is a frame error.
    check(st["slow"]["timeouts"] >= 2 and st["slow"]["ok"] == 0, "slow %r" % st["slow"])
    check(st["good-1"]["timeouts"] == 0 and st["good-3"]["crc_errors"] == 0,
          "good slaves clean: %r %r" % (st["good-1"], st["good-3"]))
    log = gw.log_text()
    for s in ("silent", "exception", "crc", "slow"):
        n = log.count("sensor %s on bus" % s)
        check(n == 1, "a repeating fault of %s is logged once, got %d lines" % (s, n))


def test_slave_comes_back(tmp):
    """A slave silent for the first seconds is retried and its return is logged."""
    link = os.path.join(tmp.path, "ttyRS485")
    sim = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530:silent,until=4"])
    broker = Broker(tmp)
    buses = [{"id": "rs485-1", "type": "modbus-rtu", "device": link, "timeout_ms": 200,
              "backoff_max_s": 2}]
    sensors = [{"id": "aq-1", "bus": "rs485-1", "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 0.5}]
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors)).start()
    try:
        wait_for(lambda: sub.readings(), 20, "readings once the slave is back")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    log = gw.log_text()
    check("sensor aq-1 on bus rs485-1: timed out" in log, "the silence is logged")
    check("answering again after" in log, "the recovery is logged")


if __name__ == "__main__":
    main([test_faulty_slaves_do_not_delay_others, test_slave_comes_back])
