"""The daemon under valgrind memcheck through a short scenario: RTU and TCP
buses (with a silent and an exception-answering slave), the broker, a SIGHUP
reload and SIGTERM; then --check and --once. 0 errors and 0 bytes definitely
lost. Not registered on a sanitizer build (valgrind and ASan do not mix);
run by hand against one, it fails rather than pass having checked nothing."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import harness
from harness import (BIN, CITYGATE, Broker, Gateway, Sim, Subscriber, base_config, check, main,
                     wait_for)

VALGRIND = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--error-exitcode=99", "--num-callers=30"]


def sanitizer_build():
    """True when CG_BINARY_DIR is an ASan build: by its CMake cache, or by
    the ASan runtime in the binary."""
    cache = os.path.join(BIN, "CMakeCache.txt")
    if os.path.exists(cache):
        with open(cache) as f:
            if re.search(r"^CG_SANITIZE:BOOL=(ON|TRUE|1)$", f.read(), re.M):
                return True
    with open(CITYGATE, "rb") as f:
        return b"__asan_init" in f.read()


def summary(log_path):
    """(errors, bytes definitely lost, whole log) from a valgrind log."""
    with open(log_path) as f:
        text = f.read()
    errors = re.findall(r"ERROR SUMMARY: ([\d,]+) errors", text)
    check(errors, "no ERROR SUMMARY in %s:\n%s" % (log_path, text[-2000:]))
    lost = re.findall(r"definitely lost: ([\d,]+) bytes", text)
    # No leak summary at all means nothing was allocated and left: 0 lost.
    return (int(errors[-1].replace(",", "")),
            int(lost[-1].replace(",", "")) if lost else 0, text)


def test_daemon_under_valgrind(tmp):
    check(not sanitizer_build(),
          "%s is a sanitizer build; valgrind needs the normal one" % BIN)
    check(shutil.which("valgrind"), "valgrind is not installed (scripts/setup.sh installs it)")
    link = os.path.join(tmp.path, "ttyRS485")
    rtu = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120:silent"])
    tcp = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530:exception"])
    broker = Broker(tmp)
    buses = [{"id": "rs485-1", "type": "modbus-rtu", "device": link, "timeout_ms": 200,
              "backoff_max_s": 2},
             {"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1",
              "port": int(tcp.endpoints[0][2])}]
    sensors = [{"id": "aq-rtu", "bus": "rs485-1", "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 0.5},
               {"id": "bay-silent", "bus": "rs485-1", "driver": "modbus", "profile": "ld120",
                "unit_id": 2, "interval_s": 0.5},
               {"id": "aq-tcp", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 0.3},
               {"id": "aq-exc", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": 2, "interval_s": 0.3}]
    cfg = base_config(tmp, broker, buses, sensors, health_interval_s=1)
    sub = Subscriber(broker, "city/test/#", retained=False)
    gw = Gateway(tmp, cfg)
    vg_log = os.path.join(tmp.path, "valgrind-daemon.log")
    gw.log = open(gw.log_path, "a")
    gw.proc = harness._track(subprocess.Popen(
        VALGRIND + ["--log-file=" + vg_log, CITYGATE, "-c", gw.config_path],
        stdout=gw.log, stderr=subprocess.STDOUT))
    try:
        wait_for(lambda: {"aq-rtu", "aq-tcp"} <= {r["sensor"] for _, r, _ in sub.readings()},
                 60, "readings from both buses under valgrind")
        time.sleep(10)
        # A reload that changes the sensors and the broker settings: buses
        # and the MQTT client are torn down and made again.
        cfg["sensors"][2]["interval_s"] = 0.4
        cfg["mqtt"]["keepalive_s"] = 20
        with open(gw.config_path, "w") as f:
            json.dump(cfg, f)
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in gw.log_text(), 60, "the reload")
        before = len(sub.readings())
        wait_for(lambda: len(sub.readings()) > before + 10, 60, "readings after the reload")
        time.sleep(3)
        gw.proc.send_signal(signal.SIGTERM)
        rc = gw.proc.wait(120)
        gw.log.close()
    finally:
        sub.stop()
        rtu.stop()
        tcp.stop()
        broker.stop()
    errors, lost, text = summary(vg_log)
    readings = sub.readings()
    health = sub.received("/health")
    print("  valgrind daemon: exit %d, %d readings, %d health messages, reload %s, "
          "errors %d, definitely lost %d bytes"
          % (rc, len(readings), len(health), "done" if "reloaded" in gw.log_text() else "no",
             errors, lost), flush=True)
    check(rc == 0, "exit %d (99: valgrind found errors); see %s" % (rc, vg_log))
    check(errors == 0 and lost == 0, "valgrind: %d errors, %d bytes definitely lost:\n%s"
          % (errors, lost, text[-4000:]))

    # The one-shot commands too: --check (config, profiles, password file
    # rules) and --once (every sensor polled once, no broker, no store).
    rtu = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530", "--slave", "2:ld120:silent"])
    tcp = Sim(tmp, ["--tcp", str(cfg["buses"][1]["port"]), "--slave", "1:aqt530",
                    "--slave", "2:aqt530:exception"])
    try:
        for mode, ok in (("--check", (0,)), ("--once", (3,))):
            log = os.path.join(tmp.path, "valgrind%s.log" % mode)
            r = subprocess.run(VALGRIND + ["--log-file=" + log, CITYGATE, mode, "-c",
                                           gw.config_path],
                               capture_output=True, text=True, timeout=300)
            errors, lost, text = summary(log)
            print("  valgrind %s: exit %d, errors %d, definitely lost %d bytes"
                  % (mode, r.returncode, errors, lost), flush=True)
            check(r.returncode in ok, "%s exit %d: %s" % (mode, r.returncode, r.stderr[-1000:]))
            check(errors == 0 and lost == 0, "valgrind %s: %d errors, %d bytes lost:\n%s"
                  % (mode, errors, lost, text[-4000:]))
    finally:
        rtu.stop()
        tcp.stop()


if __name__ == "__main__":
    main([test_daemon_under_valgrind])
