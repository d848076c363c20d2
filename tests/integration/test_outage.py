"""Nothing is lost when the broker goes away or the gateway is killed, on MQTT 5
(mqtt.version auto, the default) and on MQTT 3.1.1."""
import random
import signal
import time

from harness import (Broker, Gateway, Sim, Subscriber, Uplink, base_config, check, main,
                     seq_report, skipped_seqs, wait_for)


def load(tmp, n=8, interval=0.05):
    """n simulated AQT530s on one TCP endpoint each polled every interval s."""
    sim = Sim(tmp, ["--tcp", "0"] + sum((["--slave", "%d:aqt530" % (i + 1)] for i in range(n)), []))
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port,
              "timeout_ms": 300}]
    sensors = [{"id": "aq-%03d" % (i + 1), "bus": "lan", "driver": "modbus",
                "profile": "aqt530", "unit_id": i + 1, "interval_s": interval} for i in range(n)]
    return sim, buses, sensors


def test_broker_down_10s(tmp, version="auto"):
    """The broker itself stops for 10 s and comes back (persistent sessions):
    nothing is missing. Duplicates may include the broker's own redelivery
    to the subscriber; test_reliability's uplink outage bounds the gateway's."""
    broker = Broker(tmp)
    sim, buses, sensors = load(tmp)
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["mqtt"]["version"] = version
    gw = Gateway(tmp, cfg).start()
    try:
        wait_for(lambda: len(sub.readings()) >= 50, 30, "readings before the outage")
        broker.stop()
        before = len(sub.readings())
        time.sleep(10)
        broker.start()
        # Everything made during the outage arrives after it.
        made_by = time.monotonic()
        wait_for(lambda: any(at > made_by + 2 for _, _, at in sub.readings()), 60,
                 "live readings after the outage")
        time.sleep(2)
        check(gw.stop() == 0, "clean stop")
        time.sleep(1)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    readings = sub.readings()
    unique, missing, dups = seq_report(readings)
    check(len(readings) > before + 100, "readings made during the outage were delivered")
    check(not missing, "%d seq missing after a 10 s outage: %s" % (len(missing), missing[:20]))
    check(dups <= 2 * 64, "%d duplicates: more than the gateway's window and the broker's "
          "redelivery could make" % dups)
    log = gw.log_text()
    check(log.count("connection to") >= 1 and "lost" in log, "the outage is logged")
    check(("(MQTT 3.1.1;" if version == "3.1.1" else "(MQTT 5;") in log, "spoke %s" % version)
    print("  outage (%s): %d readings, %d unique, %d duplicates, 0 missing"
          % (version, len(readings), len(unique), dups))


def test_sigkill_and_restart(tmp, version="auto"):
    broker = Broker(tmp)
    sim, buses, sensors = load(tmp)
    sub = Subscriber(broker, "city/test/gw-test-1/+/+", retained=False)
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["mqtt"]["version"] = version
    rng = random.Random(2)
    try:
        for round in range(3):
            gw = Gateway(tmp, cfg, name="gateway").start()
            wait_for(lambda: len(sub.readings()) > 0, 30, "readings")
            time.sleep(rng.uniform(0.5, 2.0))
            gw.kill()
        gw = Gateway(tmp, cfg, name="gateway").start()
        time.sleep(3)
        check(gw.stop() == 0, "clean stop after the kills")
        time.sleep(1)
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    readings = sub.readings()
    unique, missing, dups = seq_report(readings, skipped_seqs(gw.log_text()))
    check(not missing, "%d seq missing after SIGKILLs: %s" % (len(missing), missing[:20]))
    print("  sigkill (%s): %d readings, %d unique, %d duplicates, 0 missing"
          % (version, len(readings), len(unique), dups))


def test_broker_down_10s_v311(tmp):
    test_broker_down_10s(tmp, "3.1.1")


def test_sigkill_and_restart_v311(tmp):
    test_sigkill_and_restart(tmp, "3.1.1")


if __name__ == "__main__":
    main([test_broker_down_10s, test_sigkill_and_restart, test_broker_down_10s_v311,
          test_sigkill_and_restart_v311])
