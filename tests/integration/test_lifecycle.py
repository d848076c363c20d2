"""Lifecycle: sd_notify, SIGHUP reload, --status, stopping with the broker away, and
Paho's own trace when asked for."""
import json
import os
import signal
import socket
import subprocess
import time

from harness import (CITYGATE, Broker, Gateway, Sim, Subscriber, base_config, check, main,
                     run, seq_report, wait_for)


def tcp_sim(tmp, n=3):
    sim = Sim(tmp, ["--tcp", "0"] + sum((["--slave", "%d:aqt530" % (u + 1)] for u in range(n)), []))
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    return sim, buses


def sensor(i, interval=0.2):
    return {"id": "aq-%d" % i, "bus": "lan", "driver": "modbus", "profile": "aqt530",
            "unit_id": i, "interval_s": interval}


def test_sd_notify_and_reload(tmp):
    broker = Broker(tmp)
    sim, buses = tcp_sim(tmp)
    sub = Subscriber(broker, "city/test/#")
    cfg = base_config(tmp, broker, buses, [sensor(1)])
    gw = Gateway(tmp, cfg)
    notify_path, drain_timed = notify_listener(tmp)
    messages = []

    def drain():
        messages[:] = [m for _, m in drain_timed()]
        return messages

    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
    gw.log = open(gw.log_path, "a")
    gw.proc = subprocess.Popen([CITYGATE, "-c", gw.config_path], stdout=gw.log,
                               stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: any("READY=1" in m for m in drain()), 10, "READY=1")
        wait_for(lambda: sum("WATCHDOG=1" in m for m in drain()) >= 3, 10,
                 "WATCHDOG=1 pings every half period")
        check(any("STATUS=" in m and "outbox" in m for m in messages), "STATUS= with the backlog")
        wait_for(lambda: any(r["sensor"] == "aq-1" for _, r, _ in sub.readings()), 20,
                 "readings from aq-1")

        # An invalid config is refused with the --check lines; the old one goes on.
        good = json.load(open(gw.config_path))
        bad = json.loads(json.dumps(good))
        bad["sensors"][0]["interval_s"] = -1
        with open(gw.config_path, "w") as f:
            json.dump(bad, f)
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in gw.log_text(), 10, "the reload to be refused")
        check("%s: /sensors/0/interval_s:" % gw.config_path in gw.log_text(),
              "the --check line is in the log")
        before = len(sub.readings())
        time.sleep(1)
        check(len(sub.readings()) > before, "the old config keeps running")

        # A valid one adds sensors; the MQTT session and seq carry on.
        good["sensors"] = [sensor(1), sensor(2), sensor(3)]
        with open(gw.config_path, "w") as f:
            json.dump(good, f)
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in gw.log_text(), 10, "the reload")
        check("MQTT session kept" in gw.log_text(), "the session is kept")
        wait_for(lambda: {"aq-2", "aq-3"} <= {r["sensor"] for _, r, _ in sub.readings()}, 20,
                 "readings from the new sensors")
        check(any("RELOADING=1" in m for m in drain()), "RELOADING=1 sent")
        rc = gw.stop()
        check(rc == 0, "clean stop after reloads, exit %d" % rc)
        check(any("STOPPING=1" in m for m in drain()), "STOPPING=1 sent")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    unique, missing, dups = seq_report(sub.readings())
    check(not missing and dups == 0, "seq across reloads: missing %s, %d dups" % (missing[:10], dups))
    status = [json.loads(p)["state"] for _, p, _ in sub.received("/status")]
    check(status.count("online") == 1, "one session across the reloads: %r" % status)


def test_stop_with_broker_away(tmp):
    broker = Broker(tmp)
    sim, buses = tcp_sim(tmp)
    cfg = base_config(tmp, broker, buses, [sensor(1, 0.05), sensor(2, 0.05)])
    gw = Gateway(tmp, cfg).start()
    try:
        time.sleep(1)
        broker.stop()
        time.sleep(2)
        started = time.monotonic()
        rc = gw.stop()
        took = time.monotonic() - started
    finally:
        sim.stop()
    check(rc == 0, "exit %d" % rc)
    # The unit's TimeoutStopSec is 15 s; the grace period is a few seconds.
    check(took < 10, "SIGTERM took %.1f s with the broker away" % took)
    r = run([CITYGATE, "--status", "-c", gw.config_path])
    check(r.returncode == 0, "--status: %s" % r.stderr)
    st = json.loads(r.stdout)
    check(st["rows"] > 20, "unsent readings stay in the outbox: %r" % st)
    check(st["next_seq"] > st["rows"], "--status shows next_seq: %r" % st)


def test_paho_trace_on_request(tmp):
    """citygate keeps Paho's trace at errors only (it costs a third of Paho's
    work per message), but whoever sets Paho's own MQTT_C_CLIENT_TRACE
    variables to debug a broker link gets its packet trace as before."""
    broker = Broker(tmp)
    sim, buses = tcp_sim(tmp, 1)
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, [sensor(1)]))
    env = dict(os.environ, MQTT_C_CLIENT_TRACE="ON", MQTT_C_CLIENT_TRACE_LEVEL="PROTOCOL")
    gw.log = open(gw.log_path, "a")
    gw.proc = subprocess.Popen([CITYGATE, "-c", gw.config_path], stdout=gw.log,
                               stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: len(sub.readings()) >= 3, 20, "three readings")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    text = gw.log_text()
    check("-> PUBLISH msgid:" in text and "<- PUBACK msgid:" in text,
          "Paho's packet trace, asked for, is in the output:\n%s" % text[-2000:])


def thread_policies(pid):
    """{thread name: [scheduling policy of each thread so named]} of a process."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            out.setdefault(name, []).append(os.sched_getscheduler(int(tid)))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def test_paho_send_thread_batch(tmp):
    """Paho's send thread runs as SCHED_BATCH, so that it does not preempt the
    receive thread, which sends from the PUBACK callback holding Paho's lock;
    the other threads keep the default policy. Set again after a reconnect."""
    broker = Broker(tmp)
    sim, buses = tcp_sim(tmp, 1)
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, [sensor(1)])).start()
    try:
        for round_ in ("first connection", "after a reconnect"):
            if round_ != "first connection":
                broker.stop()
                wait_for(lambda: "connection to" in gw.log_text(), 10, "the lost connection")
                broker.start()
                wait_for(lambda: gw.log_text().count("mqtt: connected") >= 2, 20,
                         "the reconnect")
            seen = len(sub.readings())
            wait_for(lambda: len(sub.readings()) >= seen + 3, 20, "readings, %s" % round_)
            policies = thread_policies(gw.proc.pid)
            check(policies.get("MQTTAsync_send") == [os.SCHED_BATCH],
                  "Paho's send thread is SCHED_BATCH, %s: %r" % (round_, policies))
            others = [p for name, ps in policies.items() if name != "MQTTAsync_send" for p in ps]
            check(others and all(p == os.SCHED_OTHER for p in others),
                  "every other thread keeps SCHED_OTHER, %s: %r" % (round_, policies))
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()


def notify_listener(tmp):
    """A bound NOTIFY_SOCKET; returns (path, drain) where drain() returns the
    (monotonic time, message) pairs received so far."""
    path = os.path.join(tmp.path, "notify-%d.sock" % len(os.listdir(tmp.path)))
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(0.05)
    got = []

    def drain():
        try:
            while True:
                got.append((time.monotonic(), ns.recv(4096).decode()))
        except socket.timeout:
            pass
        return got
    return path, drain


def test_stop_asks_every_bus_first(tmp):
    """Three buses, each in a 2.5 s request at any moment: stopping asks them
    all before waiting for any, so it takes the longest request in flight, not
    the sum, and the systemd watchdog keeps being pinged meanwhile. Before,
    each bus was asked in turn (the later ones started new requests while the
    first was joined) and the watchdog went silent for seconds."""
    broker = Broker(tmp)
    slow = 2500
    sim = Sim(tmp, sum((["--tcp", "0", "--slave", "1:aqt530:slow=%d" % slow] for _ in range(3)), []))
    buses = [{"id": "lan-%d" % i, "type": "modbus-tcp", "host": "127.0.0.1",
              "port": int(ep[2]), "timeout_ms": 5000} for i, ep in enumerate(sim.endpoints)]
    sensors = [{"id": "aq-%d" % i, "bus": "lan-%d" % i, "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 0.2} for i in range(3)]
    sub = Subscriber(broker, "city/test/#")
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors))
    path, drain = notify_listener(tmp)
    gw.log = open(gw.log_path, "a")
    gw.proc = subprocess.Popen([CITYGATE, "-c", gw.config_path], stdout=gw.log,
                               stderr=subprocess.STDOUT,
                               env=dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000"))
    try:
        wait_for(lambda: {r["sensor"] for _, r, _ in sub.readings()} >= {s["id"] for s in sensors},
                 30, "a reading from every bus")
        drain()
        sent = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        while gw.proc.poll() is None:
            drain()
        took = time.monotonic() - sent
        gw.log.close()
        check(gw.proc.returncode == 0, "clean stop")
        # Every bus is in a request of at most `slow` ms; the rest is the grace
        # for acks (a connected broker acks at once) and a margin for load.
        check(took < slow / 1000.0 + 1.5,
              "stopped in %.2f s, not the sum of three %d ms requests" % (took, slow))
        pings = [t for t, m in drain() if "WATCHDOG=1" in m and t >= sent]
        marks = [sent] + pings
        gaps = [b - a for a, b in zip(marks, marks[1:])] + [time.monotonic() - marks[-1]]
        check(pings and max(gaps) < 1.0,
              "the watchdog (1 s) is pinged while the buses stop: gaps %r" %
              [round(g, 2) for g in gaps])
        print("stop with three buses in 2.5 s requests: %.2f s, longest watchdog gap %.2f s"
              % (took, max(gaps)))
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
        sub.stop()
        sim.stop()
        broker.stop()


def test_stop_does_not_spin(tmp):
    """Stopping with readings unacknowledged (the broker is frozen: connected,
    never acking) waits out its grace period without burning a core. Before,
    the stop loop's wait returned at once because the stop flag was set."""
    broker = Broker(tmp)
    sim, buses = tcp_sim(tmp, 1)
    gw = Gateway(tmp, base_config(tmp, broker, buses, [sensor(1, 0.1)])).start()
    try:
        wait_for(lambda: "connected" in gw.log_text(), 20, "the gateway to connect")
        time.sleep(0.5)
        broker.proc.send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # readings pile up unacknowledged
        with open("/proc/%d/stat" % gw.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        cpu_before = (int(fields[11]) + int(fields[12])) / tick
        sent = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(gw.proc.pid, 0)
        took = time.monotonic() - sent
        gw.proc.returncode = os.waitstatus_to_exitcode(status)
        gw.log.close()
        cpu = usage.ru_utime + usage.ru_stime - cpu_before
        check(gw.proc.returncode == 0, "clean stop")
        check(took > 2.0, "the grace period was waited out (%.2f s)" % took)
        check(cpu / took < 0.25,
              "CPU while stopping: %.2f s in %.2f s (%.0f %%)" % (cpu, took, 100 * cpu / took))
        print("stopping with the broker frozen: %.2f s CPU in %.2f s (%.0f %%)"
              % (cpu, took, 100 * cpu / took))
    finally:
        broker.proc.send_signal(signal.SIGCONT)
        if gw.proc.returncode is None and gw.proc.poll() is None:
            gw.proc.kill()
        sim.stop()
        broker.stop()


if __name__ == "__main__":
    main([test_sd_notify_and_reload, test_stop_with_broker_away, test_paho_trace_on_request,
          test_paho_send_thread_batch, test_stop_asks_every_bus_first, test_stop_does_not_spin])
