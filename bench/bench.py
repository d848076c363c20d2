"""citygate benchmarks: each figure against a baseline measured in the same run.

Run through bench/run.sh, which builds the programs first. Every figure is
measured REPS times (at least 3); a repetition measures the baseline and
citygate one after the other, so that both see the same machine at the same
moment, and the figure is the median of the per-repetition ratios with their
spread (min-max). Targets are printed as met or not met; nothing here fails.

Sections: 1 durable throughput, 2 backlog drain, 3 footprint against collectd,
4 bus efficiency, 5 profile; over an emulated cellular link (tests/tools/linkemu.py,
100 ms round trip, 5 Mbit/s): 6 bytes on the wire per reading, 7 backlog drain,
8 live latency; 9 a fleet through a broker restart. QUICK=1 shortens every run.
"""
import argparse
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="the build folder (configured with CG_BENCH=ON)")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9", help="sections to run, e.g. 1,4")
    ap.add_argument("--size", type=int, default=0,
                    help="section 7: readings in the backlog (default 20,000; QUICK 5,000)")
    ap.add_argument("--fleet", type=int, default=0,
                    help="section 9: gateways (default $FLEET or 200; QUICK 20)")
    ap.add_argument("--outage", type=float, default=0,
                    help="section 9: seconds the broker is down (default $OUTAGE or 20)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    return ap.parse_args()


ARGS = parse_args()
os.environ["CG_BINARY_DIR"] = os.path.abspath(ARGS.build)
os.environ["CG_SOURCE_DIR"] = SRC
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import harness  # noqa: E402  (reads CG_BINARY_DIR at import)

QUICK = os.environ.get("QUICK", "0") not in ("", "0")
REPS = max(3, int(os.environ.get("REPS", "3")))
BENCH = os.path.join(ARGS.build, "bench")
CITYGATE = os.path.join(ARGS.build, "citygate")
WINDOW = int(os.environ.get("WINDOW", "64"))  # mqtt.inflight's default
TICK = os.sysconf("SC_CLK_TCK")
RESULTS = {"quick": QUICK, "reps": REPS}

# Where sections 1 and 2 run the broker and the client they measure (the plain
# loop, the gateway). "shared": where the scheduler puts them, as on a default
# box. "pinned": the broker on one CPU, the client on another. On this VM
# threads woken across CPUs move both rates by up to a third from one run to
# the next (the plain loop: 21,000-29,000 msg/s shared, 34,000-41,000 pinned,
# runs back to back), so the shared ratio can only be read from many runs; the
# pinned one shows what the client costs when its CPU is the bound. Both are
# measured in every repetition; a target holds when it holds in both.
CPUS = sorted(os.sched_getaffinity(0))
PLACEMENTS = ["shared", "pinned"] if len(CPUS) >= 2 else ["shared"]
PLACEMENT_TEXT = {"shared": "shared: broker and client wherever the scheduler puts them",
                  "pinned": "pinned: broker on CPU %d, client on CPU %d" % tuple(CPUS[:2])
                  if len(CPUS) >= 2 else ""}


def client_prefix(placement):
    """The command prefix that runs a client where the placement says."""
    return ["taskset", "-c", str(CPUS[1])] if placement == "pinned" else []


def place_broker(broker, placement):
    os.sched_setaffinity(broker.proc.pid, {CPUS[0]} if placement == "pinned" else set(CPUS))


# ---- figures ----

def spread(values):
    return "%s-%s" % (fmt(min(values)), fmt(max(values)))


def fmt(v):
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def line(label, values, unit=""):
    """Prints the median and spread of one measured quantity."""
    print("  %-44s median %10s %-10s spread %s" % (label, fmt(statistics.median(values)), unit,
                                                   spread(values)), flush=True)


def verdict(label, value, target, ok):
    print("  %-44s %-10s target %s: %s" % (label, fmt(value), target,
                                          "met" if ok else "NOT MET"), flush=True)
    return ok


def median_ci(values, level=0.95):
    """A distribution-free confidence interval for the median: the k-th
    smallest and k-th largest value, k the largest for which the chance that
    fewer than k of n values fall below the true median is at most
    (1 - level) / 2. Returns (low, high, coverage); with few values no k
    reaches the level and the interval is the whole range, at the coverage
    that range has (94 % for 5 values, 75 % for 3)."""
    xs = sorted(values)
    n = len(xs)
    below = [math.comb(n, i) / 2.0 ** n for i in range(n + 1)]
    k, tail = 1, below[0]
    while k < n // 2 and tail + below[k] <= (1 - level) / 2:
        tail += below[k]
        k += 1
    return xs[k - 1], xs[n - k], 1 - 2 * tail


def ratio_verdict(label, ratios, target):
    """The verdict on a wall-clock ratio with a floor: met when even the low
    end of the median's confidence interval reaches the target, at the
    target when only the median does (this machine's speed drifts enough
    for the two to differ), NOT MET when the median falls short."""
    med = statistics.median(ratios)
    low, high, coverage = median_ci(ratios)
    if low >= target:
        word = "met"
    elif med >= target:
        word = "met at the median, not beyond its interval"
    else:
        word = "NOT MET"
    print("  %-44s %-10s target >= %.2f: %s (%.0f %% interval %s-%s)" % (
        label, fmt(med), target, word, 100 * coverage, fmt(low), fmt(high)), flush=True)
    return {"met": med >= target, "beyond_interval": low >= target,
            "interval": [low, high], "coverage": coverage}


def record(section, **kw):
    RESULTS.setdefault(section, {}).update(kw)


# ---- processes ----

def proc_status(pid):
    """VmRSS and VmHWM of a process in kB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def proc_cpu(pid):
    """User plus system CPU seconds of a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_line(args, env=None, timeout=900):
    """Runs a bench program; returns its key=value result line as a dict."""
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (args[0], r.returncode, r.stderr[-2000:]))
    for ln in r.stdout.splitlines():
        if "=" in ln:
            return dict(kv.split("=", 1) for kv in ln.split())
    raise RuntimeError("%s printed no result" % args[0])


def rm_store(path):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def limit_rate(broker, n, placement="shared", batch=False):
    """The plain Paho QoS 1 loop's messages/s with the same window: the limit.
    Returns its steady rate (10 % to 90 % of the messages acknowledged), its rate
    over the whole run, and the payload size. With batch, Paho's send thread runs
    as SCHED_BATCH, as citygate sets it: the plain loop with citygate's Paho set-up."""
    r = run_line(client_prefix(placement) + [
        os.path.join(BENCH, "bench_throughput"), "limit", "tcp://127.0.0.1:%d" % broker.port,
        str(n), str(WINDOW)] + (["batch"] if batch else []))
    return float(r["steady"]), float(r["rate"]), int(r["payload"])


def gateway_config(tmp, broker_port, store, buses, sensors, **extra):
    cfg = {
        "gateway": {"id": "gw-bench-0001", "health_interval_s": extra.pop("health", 3600)},
        "mqtt": {"uri": "tcp://127.0.0.1:%d" % broker_port, "topic_prefix": "city/bench",
                 "inflight": WINDOW, "reconnect_min_s": 0.1, "reconnect_max_s": 0.2},
        "store": {"path": store, "sync": "normal"},
        "buses": buses,
        "sensors": sensors,
    }
    return cfg


def start_citygate(tmp, cfg, name, placement="shared"):
    path = tmp.file(name + ".json", json.dumps(cfg, indent=1))
    log = open(tmp.file(name + ".log"), "a")
    proc = subprocess.Popen(client_prefix(placement) + [CITYGATE, "-c", path], stdout=log,
                            stderr=subprocess.STDOUT)
    proc.log_file = log
    return proc


def stop(proc, timeout=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = getattr(proc, "log_file", None)
    if log:
        log.close()


# A bus to a loopback port nothing serves: a config needs one, and it polls nothing.
IDLE_BUS = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": 9}]
IDLE_SENSOR = [{"id": "aq-001", "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": 1, "interval_s": 3600}]


# ---- 1. durable throughput ----

def bench_throughput(tmp, broker):
    n = 60000 if QUICK else 200000
    print("\n== 1. Durable throughput: cg_gateway_submit to PUBACK, QoS 1, window %d, "
          "sync=normal, %d readings a run" % (WINDOW, n), flush=True)
    keys = ("limit", "citygate", "ratio", "whole_limit", "whole_citygate", "whole_ratio",
            "limit_batch", "ratio_batch")
    runs = {p: {k: [] for k in keys} for p in PLACEMENTS}
    store = os.path.join(tmp.path, "tp")
    os.makedirs(store, exist_ok=True)
    for _ in range(REPS):
        for p in PLACEMENTS:
            place_broker(broker, p)
            f = runs[p]
            # The limit before and after citygate: this machine's speed drifts
            # between runs, and the mean of the two brackets the run it is paired with.
            lim1, whole1, payload = limit_rate(broker, n, p)
            rm_store(os.path.join(store, "outbox.db"))
            # Offered load above the limit, so that the gateway is never short of readings.
            r = run_line(client_prefix(p) + [
                os.path.join(BENCH, "bench_throughput"), "gateway",
                "tcp://127.0.0.1:%d" % broker.port, str(n), str(WINDOW), store,
                str(int(lim1 * 1.5)), "2"])
            lim2, whole2, _ = limit_rate(broker, n, p)
            limb, _, _ = limit_rate(broker, n, p, batch=True)
            if int(r["lost"]):
                print("  warning: the gateway dropped %s readings" % r["lost"])
            f["limit"].append((lim1 + lim2) / 2)
            f["citygate"].append(float(r["steady"]))
            f["ratio"].append(f["citygate"][-1] / f["limit"][-1])
            f["whole_limit"].append((whole1 + whole2) / 2)
            f["whole_citygate"].append(float(r["rate"]))
            f["whole_ratio"].append(f["whole_citygate"][-1] / f["whole_limit"][-1])
            f["limit_batch"].append(limb)
            f["ratio_batch"].append(f["citygate"][-1] / limb)
    place_broker(broker, "shared")
    print("  payload %d bytes; each run: the limit, citygate, the limit again; rates from "
          "10 %% to 90 %% of the readings delivered" % payload)
    met = True
    for p in PLACEMENTS:
        f = runs[p]
        print("  -- %s" % PLACEMENT_TEXT[p])
        line("limit: plain Paho MQTTAsync loop", f["limit"], "msg/s")
        line("citygate: produced, committed, PUBACKed", f["citygate"], "readings/s")
        line("ratio citygate / limit", f["ratio"])
        line("whole runs (connect to last delete): ratio", f["whole_ratio"])
        line("the loop, its send thread SCHED_BATCH", f["limit_batch"], "msg/s")
        line("ratio citygate / that loop", f["ratio_batch"])
        f["verdict"] = ratio_verdict("durable throughput ratio, %s" % p, f["ratio"], 0.9)
        met = met and f["verdict"]["met"]
    # The shared figures keep the keys they had before placements were measured.
    record("throughput", payload=payload, n=n, met=met, **runs["shared"])
    if "pinned" in runs:
        record("throughput", pinned=runs["pinned"])


# ---- 2. backlog drain ----

def first_seq(db_path):
    """The oldest reading's seq (the outbox's first row by its primary key, cheap with a
    million readings, and the first reading in it not gone), or None."""
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=5)
    try:
        row = con.execute("SELECT first_seq, gone FROM batches ORDER BY first_seq"
                          " LIMIT 1").fetchone()
    finally:
        con.close()
    if row is None:
        return None
    first, gone = row[0], row[1] & (2 ** 64 - 1)
    return first + next(i for i in range(64) if not (gone >> i) & 1)


def drain_once(tmp, template, n, name, placement):
    """One drain of the n-row store template with the broker and citygate placed as
    told, the limit measured before and after; returns its figures."""
    port = harness.free_port()
    lim_n = 60000 if QUICK else 200000
    work = os.path.join(tmp.path, name)
    os.makedirs(work)
    store = os.path.join(work, "outbox.db")
    out = {}
    # Resident memory at empty: the same gateway on an empty store, broker up.
    broker = harness.Broker(tmp, port=port)
    place_broker(broker, placement)
    empty_store = os.path.join(work, "empty.db")
    gw = start_citygate(tmp, gateway_config(tmp, port, empty_store, IDLE_BUS, IDLE_SENSOR),
                        name + "-empty", placement)
    time.sleep(3)
    out["rss_empty"] = proc_status(gw.pid)["VmRSS"] / 1024
    stop(gw)
    lim1, _, _ = limit_rate(broker, lim_n, placement)
    broker.stop()

    shutil.copyfile(template, store)
    gw = start_citygate(tmp, gateway_config(tmp, port, store, IDLE_BUS, IDLE_SENSOR), name,
                        placement)
    time.sleep(3)
    out["rss_full"] = proc_status(gw.pid)["VmRSS"] / 1024
    broker = harness.Broker(tmp, port=port)
    place_broker(broker, placement)
    t0 = time.monotonic()
    hwm = 0
    # The steady drain: from 10 % to 90 % of the rows delivered (deleted after
    # their PUBACK, oldest first), leaving out the reconnect and the last batch.
    t_lo = t_hi = None
    while True:
        hwm = max(hwm, proc_status(gw.pid)["VmRSS"])
        first = first_seq(store)
        now = time.monotonic()
        done = n if first is None else first - 1
        if t_lo is None and done >= n // 10:
            t_lo = now
        if t_hi is None and done >= n - n // 10:
            t_hi = now
        if first is None:
            break
        if now - t0 > 900:
            raise RuntimeError("the backlog did not drain in 900 s")
        time.sleep(0.05)
    t1 = time.monotonic()
    st = proc_status(gw.pid)
    out["hwm_drain"] = max(hwm, st["VmHWM"]) / 1024
    out["after_drain"] = st["VmRSS"] / 1024
    stop(gw)
    lim2, _, _ = limit_rate(broker, lim_n, placement)
    out["limit_batch"], _, _ = limit_rate(broker, lim_n, placement, True)
    out["limit"] = (lim1 + lim2) / 2
    out["drain"] = (n - 2 * (n // 10)) / (t_hi - t_lo)
    out["whole"] = n / (t1 - t0)
    out["ratio"] = out["drain"] / out["limit"]
    out["ratio_batch"] = out["drain"] / out["limit_batch"]
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    return out


def bench_drain(tmp):
    n = 200000 if QUICK else 1000000
    print("\n== 2. Backlog drain: %d readings in the outbox, then the broker comes back"
          % n, flush=True)
    template = os.path.join(tmp.path, "backlog.db")
    r = run_line([os.path.join(BENCH, "bench_fill"), template, str(n)])
    print("  filled by bench_fill in %s s (cg_outbox_put, 1000 rows a transaction)"
          % r["seconds"])
    runs = {p: [] for p in PLACEMENTS}
    for rep in range(REPS):
        for p in PLACEMENTS:
            runs[p].append(drain_once(tmp, template, n, "drain-%s%d" % (p, rep), p))
    verdicts = {}
    for p in PLACEMENTS:
        print("  -- %s" % PLACEMENT_TEXT[p])
        line("limit: plain Paho MQTTAsync loop", [d["limit"] for d in runs[p]], "msg/s")
        line("citygate drain, 10 % to 90 % of the rows", [d["drain"] for d in runs[p]], "rows/s")
        line("ratio drain / limit", [d["ratio"] for d in runs[p]])
        line("whole drain (broker up to outbox empty)", [d["whole"] for d in runs[p]], "rows/s")
        line("the loop, its send thread SCHED_BATCH", [d["limit_batch"] for d in runs[p]],
             "msg/s")
        line("ratio drain / that loop", [d["ratio_batch"] for d in runs[p]])
        verdicts[p] = ratio_verdict("drain ratio, %s" % p, [d["ratio"] for d in runs[p]], 0.9)
    # Memory does not depend on where the processes run: every run counts.
    every = [d for p in PLACEMENTS for d in runs[p]]
    print("  -- memory, all runs")
    line("citygate VmRSS, empty store", [d["rss_empty"] for d in every], "MB")
    line("citygate VmRSS, %d rows, broker away" % n, [d["rss_full"] for d in every], "MB")
    line("citygate VmHWM, start to drained", [d["hwm_drain"] for d in every], "MB")
    line("citygate VmRSS, drained", [d["after_drain"] for d in every], "MB")
    apart = [max(d["rss_full"], d["hwm_drain"]) - d["rss_empty"] for d in every]
    line("peak with rows minus empty", apart, "MB")
    ok2 = verdict("RSS apart, %d rows vs empty (MB)" % n, statistics.median(apart), "< 5",
                  statistics.median(apart) < 5)
    shared = runs["shared"]
    # The shared figures keep the keys they had before placements were measured.
    record("drain", n=n, limit=[d["limit"] for d in shared], drain=[d["drain"] for d in shared],
           ratio=[d["ratio"] for d in shared], whole_drain=[d["whole"] for d in shared],
           limit_batch=[d["limit_batch"] for d in shared],
           ratio_batch=[d["ratio_batch"] for d in shared],
           rss_empty_mb=[d["rss_empty"] for d in every],
           rss_full_mb=[d["rss_full"] for d in every],
           hwm_drain_mb=[d["hwm_drain"] for d in every],
           rss_drained_mb=[d["after_drain"] for d in every], apart_mb=apart,
           met=[all(v["met"] for v in verdicts.values()), ok2],
           drain_verdict=verdicts["shared"])
    if "pinned" in runs:
        record("drain", pinned={"runs": runs["pinned"], "verdict": verdicts["pinned"]})


# ---- 3. footprint against collectd ----

class Counter:
    """Counts messages, and the readings in citygate's batches, per first topic
    level (citygate's and collectd's)."""

    def __init__(self, broker):
        self.counts = {}
        self.readings = {}
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                                      "-t", "city/#", "-t", "collectd/#", "-F", "%t %p"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.3)

    def _read(self):
        for ln in self.proc.stdout:
            topic, _, payload = ln.rstrip("\n").partition(" ")
            top = topic.split("/", 1)[0]
            n = readings_in(topic, payload, True) if topic.endswith("/batch") else 1
            with self.lock:
                self.counts[top] = self.counts.get(top, 0) + 1
                self.readings[top] = self.readings.get(top, 0) + n

    def get(self, top):
        with self.lock:
            return self.counts.get(top, 0)

    def get_readings(self, top):
        """Messages, with a batch counted as the readings it carries."""
        with self.lock:
            return self.readings.get(top, 0)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


AQT530_POINTS = [  # name, register, collectd RegisterType, scale (drivers/profiles/aqt530.json)
    ("no2", 0, "Int16", 1), ("so2", 1, "Int16", 1), ("co", 2, "Int16", 1),
    ("h2s", 4, "Int16", 1), ("o3", 5, "Int16", 1), ("no", 6, "Int16", 1),
    ("pm25", 8, "Int16", 0.1), ("pm10", 9, "Int16", 0.1), ("temperature", 10, "Int16", 0.1),
    ("relativeHumidity", 11, "Int16", 0.1), ("pressure", 12, "Int16", 0.1),
]
TH2_POINTS = [  # bench/profiles/th2.json: a temperature and humidity transmitter
    ("temperature", 0, "Int16", 0.1), ("relativeHumidity", 1, "Int16", 0.1),
]
# The shapes section 3 runs: (profile, its points, the folder it is in or None for
# the shipped ones, Modbus TCP endpoints, slaves on each). The aqt530's eleven
# registers in one request on ten buses of twenty, and th2's two on one bus of 200,
# as issue #23 measured it: with so little to decode and publish, a poll's fixed
# costs (wake-ups, a commit, a send) are most of what it costs.
FOOTPRINT_SHAPES = [
    ("aqt530", AQT530_POINTS, None, 10, 20),
    ("th2", TH2_POINTS, os.path.join(HERE, "profiles"), 1, 200),
]


def collectd_config(tmp, broker, endpoints, per_endpoint, shape, points):
    """collectd with its modbus plugin reading the shape's registers of every slave
    every second, and its mqtt plugin publishing each value with QoS 1."""
    base = os.path.join(tmp.path, "collectd-" + shape)
    os.makedirs(base, exist_ok=True)
    out = ['Hostname "gw-bench-0001"', "FQDNLookup false", 'BaseDir "%s"' % base,
           'PIDFile "%s/collectd.pid"' % base, 'TypesDB "/usr/share/collectd/types.db"',
           "Interval 1", "LoadPlugin logfile",
           '<Plugin logfile>\n  LogLevel "warning"\n  File "%s/collectd.log"\n</Plugin>' % base,
           "LoadPlugin modbus", "LoadPlugin mqtt", "<Plugin modbus>"]
    for name, reg, rtype, scale in points:
        out.append('  <Data "%s">\n    RegisterBase %d\n    RegisterType %s\n'
                   '    RegisterCmd ReadHolding\n    Type gauge\n    Instance "%s"\n'
                   '    Scale %s\n  </Data>' % (name, reg, rtype, name, scale))
    for e, port in enumerate(endpoints):
        out.append('  <Host "ep%02d">\n    Address "127.0.0.1"\n    Port "%d"\n    Interval 1'
                   % (e, port))
        for unit in range(1, per_endpoint + 1):
            out.append("    <Slave %d>\n      Instance \"aq-%02d-%03d\"" % (unit, e, unit))
            out.extend('      Collect "%s"' % p[0] for p in points)
            out.append("    </Slave>")
        out.append("  </Host>")
    out.append("</Plugin>")
    out.append('<Plugin mqtt>\n  <Publish "broker">\n    Host "127.0.0.1"\n    Port "%d"\n'
               '    ClientId "collectd-bench"\n    QoS 1\n    Prefix "collectd"\n'
               '    Retain false\n    StoreRates false\n  </Publish>\n</Plugin>' % broker.port)
    return tmp.file("collectd-%s.conf" % shape, "\n".join(out) + "\n")


def measure(proc, seconds):
    """CPU seconds and peak RSS (MB) of proc after it has run for seconds."""
    time.sleep(seconds)
    if proc.poll() is not None:
        raise RuntimeError("the process under test exited early")
    return proc_cpu(proc.pid), proc_status(proc.pid)["VmHWM"] / 1024


def footprint_shape(tmp, broker, counter, shape, points, profile_dir, endpoints_n, per,
                    seconds):
    """One shape of section 3: REPS repetitions of citygate then collectd on the same
    simulated sensors. Returns what it recorded."""
    print("\n  -- %s: %d holding registers a sensor, %d endpoints x %d slaves" % (
        shape, len(points), endpoints_n, per), flush=True)
    args = ["--profile-dir", profile_dir] if profile_dir else []
    for _ in range(endpoints_n):
        args += ["--tcp", "0"] + sum((["--slave", "%d:%s" % (u, shape)]
                                      for u in range(1, per + 1)), [])
    sim = harness.Sim(tmp, args)
    ports = [int(e[2]) for e in sim.endpoints if e[0] == "tcp"]
    buses = [{"id": "ep%02d" % e, "type": "modbus-tcp", "host": "127.0.0.1", "port": p}
             for e, p in enumerate(ports)]
    sensors = [{"id": "aq-%02d-%03d" % (e, u), "bus": "ep%02d" % e, "driver": "modbus",
                "profile": shape, "unit_id": u, "interval_s": 1}
               for e in range(len(ports)) for u in range(1, per + 1)]
    conf = collectd_config(tmp, broker, ports, per, shape, points)
    n_polls = len(sensors) * seconds  # what both were asked to do
    cg_cpu, cg_rss, cd_cpu, cd_rss, cg_rate, cd_rate, idle = [], [], [], [], [], [], []
    cb_cpu, cb_rss, cb_rate = [], [], []  # citygate with mqtt.batch, its defaults (1 s)
    try:
        for rep in range(REPS):
            # Idle: one sensor polled once a minute, connected, empty store.
            store = os.path.join(tmp.path, "idle-%s%d.db" % (shape, rep))
            cfg = gateway_config(tmp, broker.port, store, buses[:1],
                                 [dict(sensors[0], interval_s=60)])
            if profile_dir:
                cfg["profile_dirs"] = [profile_dir]
            gw = start_citygate(tmp, cfg, "idle-%s%d" % (shape, rep))
            time.sleep(5)
            idle.append(proc_status(gw.pid)["VmRSS"] / 1024)
            stop(gw)

            store = os.path.join(tmp.path, "footprint-%s%d.db" % (shape, rep))
            before = counter.get("city")
            cfg = gateway_config(tmp, broker.port, store, buses, sensors)
            if profile_dir:
                cfg["profile_dirs"] = [profile_dir]
            gw = start_citygate(tmp, cfg, "footprint-%s%d" % (shape, rep))
            cpu, rss = measure(gw, seconds)
            cg_rate.append((counter.get("city") - before) / seconds)
            stop(gw)
            cg_cpu.append(cpu)
            cg_rss.append(rss)

            store = os.path.join(tmp.path, "footprint-batch-%s%d.db" % (shape, rep))
            cfg = gateway_config(tmp, broker.port, store, buses, sensors)
            cfg["mqtt"]["batch"] = {}
            if profile_dir:
                cfg["profile_dirs"] = [profile_dir]
            before = counter.get_readings("city")
            gw = start_citygate(tmp, cfg, "footprint-batch-%s%d" % (shape, rep))
            cpu, rss = measure(gw, seconds)
            stop(gw)
            cb_rate.append((counter.get_readings("city") - before) / seconds)
            cb_cpu.append(cpu)
            cb_rss.append(rss)

            before = counter.get("collectd")
            log = open(tmp.file("collectd-%s-rep%d.log" % (shape, rep)), "w")
            cd = subprocess.Popen(["collectd", "-f", "-C", conf], stdout=log,
                                  stderr=subprocess.STDOUT)
            cd.log_file = log
            cpu, rss = measure(cd, seconds)
            cd_rate.append((counter.get("collectd") - before) / seconds)
            stop(cd)
            cd_cpu.append(cpu)
            cd_rss.append(rss)
    finally:
        sim.stop()
    line("citygate CPU seconds", cg_cpu, "s")
    line("collectd CPU seconds", cd_cpu, "s")
    line("citygate CPU per poll", [c / n_polls * 1e6 for c in cg_cpu], "us")
    line("collectd CPU per poll", [c / n_polls * 1e6 for c in cd_cpu], "us")
    cpu_ratio = [a / b for a, b in zip(cg_cpu, cd_cpu)]
    line("CPU per poll ratio citygate / collectd", cpu_ratio)
    line("citygate peak RSS (VmHWM)", cg_rss, "MB")
    line("collectd peak RSS (VmHWM)", cd_rss, "MB")
    rss_ratio = [a / b for a, b in zip(cg_rss, cd_rss)]
    line("RSS ratio citygate / collectd", rss_ratio)
    line("citygate idle RSS (1 sensor, connected)", idle, "MB")
    line("batched: citygate CPU per poll", [c / n_polls * 1e6 for c in cb_cpu], "us")
    cb_ratio = [a / b for a, b in zip(cb_cpu, cd_cpu)]
    line("batched: CPU per poll ratio to collectd", cb_ratio)
    cb_rss_ratio = [a / b for a, b in zip(cb_rss, cd_rss)]
    line("batched: citygate peak RSS (VmHWM)", cb_rss, "MB")
    line("batched: RSS ratio to collectd", cb_rss_ratio)
    line("citygate messages/s (one per reading)", cg_rate, "msg/s")
    line("collectd messages/s (one per value)", cd_rate, "msg/s")
    line("batched: citygate readings/s in batches", cb_rate, "/s")
    ok1 = verdict("%s CPU per poll ratio" % shape, statistics.median(cpu_ratio), "<= 0.50",
                  statistics.median(cpu_ratio) <= 0.5)
    ok2 = verdict("%s RSS ratio" % shape, statistics.median(rss_ratio), "<= 1.00",
                  statistics.median(rss_ratio) <= 1.0)
    ok3 = verdict("%s idle RSS (MB)" % shape, statistics.median(idle), "< 8",
                  statistics.median(idle) < 8)
    verdict("%s batched CPU per poll ratio" % shape, statistics.median(cb_ratio), "<= 0.50",
            statistics.median(cb_ratio) <= 0.5)
    verdict("%s batched RSS ratio" % shape, statistics.median(cb_rss_ratio), "<= 1.00",
            statistics.median(cb_rss_ratio) <= 1.0)
    return dict(seconds=seconds, sensors=len(sensors), registers=len(points),
                endpoints=endpoints_n, per_endpoint=per,
                citygate_cpu_s=cg_cpu, collectd_cpu_s=cd_cpu, cpu_ratio=cpu_ratio,
                citygate_hwm_mb=cg_rss, collectd_hwm_mb=cd_rss, rss_ratio=rss_ratio,
                idle_rss_mb=idle, batched_cpu_s=cb_cpu, batched_cpu_ratio=cb_ratio,
                batched_hwm_mb=cb_rss, batched_rss_ratio=cb_rss_ratio, batched_readings_s=cb_rate,
                citygate_msg_s=cg_rate, collectd_msg_s=cd_rate,
                met=[ok1, ok2, ok3])


def bench_footprint(tmp, broker):
    seconds = 15 if QUICK else 60
    print("\n== 3. Footprint: 200 Modbus TCP sensors polled every second for %d s, "
          "published to mosquitto, in two shapes" % seconds, flush=True)
    if not os.path.exists("/usr/lib/collectd/modbus.so"):
        print("  collectd-core is not installed: skipped")
        return
    only = os.environ.get("SHAPES")  # e.g. SHAPES=th2: one shape, for experiments
    counter = Counter(broker)
    try:
        for shape, points, profile_dir, endpoints_n, per in FOOTPRINT_SHAPES:
            if only and shape not in only.split(","):
                continue
            got = footprint_shape(tmp, broker, counter, shape, points, profile_dir,
                                  endpoints_n, per, seconds)
            # The aqt530's figures stay under the keys they always had.
            if shape == "aqt530":
                record("footprint", **got)
            else:
                record("footprint", **{shape: got})
    finally:
        counter.stop()


# ---- 4. bus efficiency ----

def health_messages(sub):
    out = []
    for _, payload, _ in sub.received("/health"):
        out.append(json.loads(payload))
    return out


def rfc3339_s(ts):
    t = time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) + float("0" + ts[19:-1])


def bench_bus(tmp, broker):
    print("\n== 4. Bus efficiency: requests and bytes per poll (RTU framing), and polls/s at "
          "9600 baud on a pty", flush=True)
    # The shipped profiles, and the example traffic-counter (a multi-lane map the
    # shipped ones lack), which the simulator and the gateway find by its folder.
    plans = []
    for folder in (os.path.join(SRC, "drivers", "profiles"), harness.EXAMPLE_PROFILES):
        r = subprocess.run([os.path.join(BENCH, "bench_plan"), folder, "9600"],
                           capture_output=True, text=True, check=True)
        plans += [dict(kv.split("=", 1) for kv in ln.split()) for ln in r.stdout.splitlines()]
    print("  %-16s %6s %9s %9s %9s %9s %11s %11s" % (
        "profile", "points", "requests", "minimum", "bytes", "minimum", "per-point",
        "ms at 9600"))
    for p in plans:
        print("  %-16s %6s %9s %9s %9s %9s %5s/%-5s %11s" % (
            p["profile"], p["points"], p["cg_requests"], p["min_requests"], p["cg_bytes"],
            p["min_bytes"], p["per_point_requests"], p["per_point_bytes"], p["cg_poll_ms"]))
    print("  (per-point: one request per point, as collectd's modbus plugin reads; ms: "
          "request, answer and two 3.5-character silences, 11-bit characters)")
    seconds = 5 if QUICK else 10
    results = {}
    for p in plans:
        name = p["profile"]
        limit = float(p["limit_polls_s"])
        rates, req_per_poll = [], []
        for rep in range(REPS):
            link = os.path.join(tmp.path, "tty-%s-%d" % (name, rep))
            sim = harness.Sim(tmp, ["--profile-dir", harness.EXAMPLE_PROFILES,
                                    "--rtu", link, "--baud", "9600"] +
                              sum((["--slave", "%d:%s" % (u, name)] for u in range(1, 5)), []))
            sub = harness.Subscriber(broker, "city/bench/+/health", client_id="bench-h-%s-%d" % (name, rep),
                                     retained=False)
            bus = [{"id": "rs485", "type": "modbus-rtu", "device": link, "baud": 9600,
                    "timeout_ms": 300}]
            # Four slaves asked for ten polls a second each: more than the line can carry,
            # so the bus is never idle and the rate is the line's.
            sens = [{"id": "s%d" % u, "bus": "rs485", "driver": "modbus", "profile": name,
                     "unit_id": u, "interval_s": 0.1} for u in range(1, 5)]
            store = os.path.join(tmp.path, "bus-%s-%d.db" % (name, rep))
            cfg = gateway_config(tmp, broker.port, store, bus, sens, health=1)
            cfg["profile_dirs"] = [harness.EXAMPLE_PROFILES]
            gw = start_citygate(tmp, cfg, "bus-%s-%d" % (name, rep))
            harness.wait_for(lambda: len(health_messages(sub)) >= 2, 20, "health messages")
            first = health_messages(sub)[-1]
            time.sleep(seconds)
            last = health_messages(sub)[-1]
            stop(gw)
            sub.stop()
            sim.stop()

            def totals(h):
                b = h["buses"][0]
                return sum(s["ok"] for s in b["sensors"]), b["requests"]
            ok0, req0 = totals(first)
            ok1, req1 = totals(last)
            dt = rfc3339_s(last["ts"]) - rfc3339_s(first["ts"])
            rates.append((ok1 - ok0) / dt)
            req_per_poll.append((req1 - req0) / max(1, ok1 - ok0))
        ratio = [x / limit for x in rates]
        print("  %s: physical limit %.2f polls/s (its fewest-characters plan)" % (name, limit))
        line("  citygate polls/s, 9600 baud pty", rates, "polls/s")
        line("  requests per poll (measured)", req_per_poll)
        line("  ratio polls/s / physical limit", ratio)
        results[name] = {"plan": p, "polls_s": rates, "ratio": ratio,
                         "requests_per_poll": req_per_poll}
    record("bus", profiles=results)


# ---- 5. profile ----

def perf_works():
    r = subprocess.run(["perf", "stat", "-e", "instructions", "true"], capture_output=True,
                       text=True)
    return r.returncode == 0 and "not supported" not in r.stderr


def bench_profile(tmp, broker):
    n = 5000 if QUICK else 20000
    store = os.path.join(tmp.path, "prof")
    os.makedirs(store, exist_ok=True)
    args = [os.path.join(BENCH, "bench_throughput"), "gateway",
            "tcp://127.0.0.1:%d" % broker.port, str(n), str(WINDOW), store, "2000", "1"]
    out = os.path.join(tmp.path, "profile.txt")
    if shutil.which("perf") and perf_works():
        tool = "perf"
        data = os.path.join(tmp.path, "perf.data")
        subprocess.run(["perf", "record", "-g", "-o", data] + args, capture_output=True,
                       check=True)
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                              "-g", "none", "--sort", "dso,sym"], capture_output=True, text=True)
        text = rep.stdout
    else:
        tool = "callgrind"
        cg_out = os.path.join(tmp.path, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg_out] + args,
                       capture_output=True, check=True, timeout=1800)
        incl = subprocess.run(["callgrind_annotate", "--inclusive=yes", cg_out],
                              capture_output=True, text=True).stdout
        excl = subprocess.run(["callgrind_annotate", cg_out], capture_output=True,
                              text=True).stdout
        text = "== inclusive ==\n" + incl + "\n== exclusive ==\n" + excl
    with open(out, "w") as f:
        f.write(text)
    keep = os.environ.get("PROFILE_OUT")
    if keep:
        shutil.copyfile(out, keep)
    print("\n== 5. Profile of the throughput run (%s, %d readings, offered 2,000/s)" % (tool, n))
    shown = 0
    for ln in text.splitlines():
        if shown >= 25:
            break
        if tool == "callgrind" and ("(" in ln and ")" in ln and ":" in ln) or (
                tool == "perf" and ln.strip() and not ln.startswith("#")):
            print("  " + ln.strip()[:140])
            shown += 1
    print("  (full listing: %s)" % (keep or "set PROFILE_OUT=FILE to keep it"))
    record("profile", tool=tool, n=n)


# ---- 6-9. over an emulated cellular link ----

# The link of issue #23: a cellular uplink, 100 ms round trip, 5 Mbit/s.
LINK_RTT_MS = 100
LINK_BPS = 5_000_000
FORMATS = ("native", "senml", "ngsi-ld")


def readings_in(topic, payload, batched):
    """How many readings a message on a reading or batch topic carries."""
    if topic.endswith(("/status", "/health", "/state")):
        return 0
    if not batched or not topic.endswith("/batch"):
        return 1
    doc = json.loads(payload)
    if isinstance(doc, dict):  # native: sensors[].readings[]
        return sum(len(s["readings"]) for s in doc["sensors"])
    if doc and isinstance(doc[0], dict) and "type" in doc[0]:  # NGSI-LD entities
        return len(doc)
    # SenML: one seq record per reading (docs/topics.md; test_batch.unpack counts so)
    return sum(1 for rec in doc if rec.get("n") == "seq")


class Pki:
    """A CA and a certificate for 127.0.0.1, made with openssl (test_security's)."""

    def __init__(self, tmp):
        import test_security
        d = os.path.join(tmp.path, "pki")
        os.makedirs(d, exist_ok=True)
        self.ca = test_security.make_ca(d, "ca")
        self.cert, self.key = test_security.make_cert(d, "server", "ca", "127.0.0.1",
                                                      "IP:127.0.0.1,DNS:localhost")


def link_broker(tmp, pki=None):
    """A broker with a plain listener (the subscriber's) and, with pki, a TLS one
    (the gateway's, through the link). Returns (broker, the gateway's port)."""
    if not pki:
        b = harness.Broker(tmp)
        return b, b.port
    tls_port = harness.free_port()
    b = harness.Broker(tmp, extra="listener %d 127.0.0.1\ncafile %s\ncertfile %s\n"
                       "keyfile %s\n" % (tls_port, pki.ca, pki.cert, pki.key))
    return b, tls_port


def sim_sensors(tmp, n, interval):
    sim = harness.Sim(tmp, ["--tcp", "0"] + sum((["--slave", "%d:aqt530" % (u + 1)]
                                                  for u in range(n)), []))
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1",
              "port": int(sim.endpoints[0][2])}]
    sensors = [{"id": "aq-%03d" % (u + 1), "bus": "lan", "driver": "modbus",
                "profile": "aqt530", "unit_id": u + 1, "interval_s": interval}
               for u in range(n)]
    return sim, buses, sensors


def link_config(tmp, port, fmt, pki, batch, buses, sensors, store):
    cfg = gateway_config(tmp, port, store, buses, sensors)
    cfg["mqtt"].update({"format": fmt, "reconnect_min_s": 0.5, "reconnect_max_s": 2})
    if pki:
        cfg["mqtt"]["uri"] = "ssl://127.0.0.1:%d" % port
        cfg["mqtt"]["tls"] = {"ca_file": pki.ca}
    if batch:
        cfg["mqtt"]["batch"] = batch
    return cfg


def wire_once(tmp, fmt, pki, batch, seconds):
    """One gateway, 4 sensors every 0.1 s, over the link: the bytes it sends per
    reading delivered, counted between two moments once connected (so the connect
    and the TLS handshake are left out)."""
    broker, port = link_broker(tmp, pki)
    link = harness.Link(port, rtt_ms=LINK_RTT_MS, rate_bps=LINK_BPS)
    sim, buses, sensors = sim_sensors(tmp, 4, 0.1)
    sub = harness.Subscriber(broker, "city/bench/#", retained=False)
    store = os.path.join(tmp.path, "wire-%s-%d-%d.db" % (fmt, bool(pki), bool(batch)))
    cfg = link_config(tmp, link.port, fmt, pki, batch, buses, sensors, store)
    gw = start_citygate(tmp, cfg, "wire-%s" % fmt)

    def delivered():
        return sum(readings_in(t, p, bool(batch)) for t, p, _ in sub.received())
    try:
        harness.wait_for(lambda: delivered() >= 40, 60, "readings over the link")
        time.sleep(2)
        b0, a0, n0 = link.bytes_sent(), link.bytes_relayed(), delivered()
        time.sleep(seconds)
        b1, a1, n1 = link.bytes_sent(), link.bytes_relayed(), delivered()
    finally:
        stop(gw)
        sub.stop()
        sim.stop()
        link.close()
        broker.stop()
    n = n1 - n0
    return {"readings": n, "up": (b1 - b0) / n, "both": (a1 - a0) / n}


def bench_wire(tmp):
    secs = 5 if QUICK else 10
    print("\n== 6. Bytes on the wire per reading: one gateway, 4 sensors at 10 Hz, over a "
          "%d ms, %.0f Mbit/s link, %d s counted; TCP payload (MQTT, or TLS records), "
          "IP and TCP headers not counted" % (LINK_RTT_MS, LINK_BPS / 1e6, secs), flush=True)
    pki = Pki(tmp)
    out = {}
    for fmt in FORMATS:
        for tls in (False, True):
            for mode, batch in (("single", None),
                                ("batched", {"max_readings": 100, "max_latency_ms": 1000})):
                r = wire_once(tmp, fmt, pki if tls else None, batch, secs)
                key = "%s %s %s" % (fmt, "tls" if tls else "plain", mode)
                out[key] = r
                print("  %-28s %7.1f B/reading sent, %7.1f both ways (%d readings)"
                      % (key, r["up"], r["both"], r["readings"]), flush=True)
    record("wire", link={"rtt_ms": LINK_RTT_MS, "rate_bps": LINK_BPS}, seconds=secs, runs=out)
    for tls in ("plain", "tls"):
        single = out["native %s single" % tls]["up"]
        batched = out["native %s batched" % tls]["up"]
        verdict("native batched / single, %s" % tls, batched / single, "<= 0.25",
                batched / single <= 0.25)


def drain_link_once(tmp, template, n, batch):
    """The n-reading backlog of template drained over the link; returns rows/s, the
    bytes sent and the time the link needs for those bytes at its rate."""
    broker, port = link_broker(tmp)
    link = harness.Link(port, rtt_ms=LINK_RTT_MS, rate_bps=LINK_BPS)
    work = os.path.join(tmp.path, "drain-link-%d" % bool(batch))
    os.makedirs(work, exist_ok=True)
    store = os.path.join(work, "outbox.db")
    shutil.copyfile(template, store)
    cfg = link_config(tmp, link.port, "native", None, batch, IDLE_BUS, IDLE_SENSOR, store)
    gw = start_citygate(tmp, cfg, "drain-link")
    t0 = time.monotonic()
    t_lo = t_hi = None
    try:
        # As in section 2: the steady drain from 10 % to 90 % of the rows delivered,
        # leaving out the start, the connect and the last messages.
        while True:
            first = first_seq(store)
            now = time.monotonic()
            done = n if first is None else first - 1
            if t_lo is None and done >= n // 10:
                t_lo = now
            if t_hi is None and done >= n - n // 10:
                t_hi = now
            if first is None:
                break
            if now - t0 > 1800:
                raise RuntimeError("the backlog did not drain over the link in 1800 s")
            time.sleep(0.05)
        took = time.monotonic() - t0
        sent = link.bytes_sent()
    finally:
        stop(gw)
        link.close()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {"rate": n / took, "seconds": took, "bytes": sent,
            "steady": (n - 2 * (n // 10)) / (t_hi - t_lo),
            "link_s": sent * 8 / LINK_BPS, "link_use": sent * 8 / LINK_BPS / took}


SINGLE_MAX = 20000


def bench_drain_link(tmp):
    n = ARGS.size or (5000 if QUICK else 20000)
    ceiling = WINDOW / (LINK_RTT_MS / 1000.0)
    print("\n== 7. Backlog drain over the link: %d native readings (bench_fill), %d ms, "
          "%.0f Mbit/s; the ceiling of one reading per message: inflight %d per round trip "
          "= %.0f msg/s" % (n, LINK_RTT_MS, LINK_BPS / 1e6, WINDOW, ceiling), flush=True)
    # One reading per message is bound by the window, steady within seconds, and a
    # backlog of 1 M would take 40 minutes a run that way: it drains at most
    # SINGLE_MAX readings, the batched mode all n.
    modes = [("single", None, min(n, SINGLE_MAX)),
             ("batched", {"max_readings": 1000, "max_latency_ms": 1000}, n)]
    out = {}
    for mode, batch, size in modes:
        template = os.path.join(tmp.path, "backlog-link-%d.db" % size)
        if not os.path.exists(template):
            run_line([os.path.join(BENCH, "bench_fill"), template, str(size)])
        runs = [drain_link_once(tmp, template, size, batch) for _ in range(REPS)]
        out[mode] = runs
        print("  -- %s: %d readings" % (mode, size))
        line("drain, 10 % to 90 % of the rows", [r["steady"] for r in runs], "rows/s")
        line("its ratio to %.0f msg/s" % ceiling, [r["steady"] / ceiling for r in runs])
        line("whole drain (start to outbox empty)", [r["rate"] for r in runs], "rows/s")
        line("bytes sent per reading", [r["bytes"] / size for r in runs], "B")
        line("link use: the bytes' time at 5 Mbit/s / took", [r["link_use"] for r in runs])
    record("drain_link", n=n, ceiling=ceiling, runs=out)
    single = statistics.median(r["steady"] for r in out["single"])
    batched = statistics.median(r["steady"] for r in out["batched"])
    use = statistics.median(r["link_use"] for r in out["batched"])
    # Issue #23: batched, the drain uses the link's byte rate, not the round trips.
    verdict("batched link use (bytes' time / took)", use, ">= 0.9", use >= 0.9)
    verdict("batched drain / the one-per-message ceiling", batched / ceiling, "> 1",
            batched > ceiling)
    verdict("batched / single drain", batched / single, "> 1", batched > single)


def bench_latency(tmp):
    secs = 20 if QUICK else 60
    print("\n== 8. Live latency at 1 Hz over the link: one sensor each second, %d s; "
          "arrival at a subscriber beside the broker minus the reading's ts" % secs,
          flush=True)
    max_latency_ms = 1000
    out = {}
    for mode, batch in (("single", None),
                        ("batched", {"max_readings": 100, "max_latency_ms": max_latency_ms})):
        broker, port = link_broker(tmp)
        link = harness.Link(port, rtt_ms=LINK_RTT_MS, rate_bps=LINK_BPS)
        from fleet import ts_s
        sim, buses, sensors = sim_sensors(tmp, 1, 1.0)
        sub = harness.Subscriber(broker, "city/bench/#", retained=False)
        store = os.path.join(tmp.path, "latency-%s.db" % mode)
        gw = start_citygate(tmp, link_config(tmp, link.port, "native", None, batch, buses,
                                             sensors, store), "latency-" + mode)
        try:
            time.sleep(secs)
        finally:
            stop(gw)
            sub.stop()
            sim.stop()
            link.close()
            broker.stop()
        lat = []
        for t, p, at in sub.received():
            if t.endswith(("/status", "/health", "/state")):
                continue
            doc = json.loads(p)
            rs = [r for s in doc["sensors"] for r in s["readings"]] if batch else [doc]
            lat += [(wall_of(at) - ts_s(r)) * 1000 for r in rs]
        out[mode] = lat
        line("%s: latency" % mode, lat, "ms")
    record("latency", runs={k: {"median_ms": statistics.median(v), "n": len(v)}
                            for k, v in out.items()})
    med = statistics.median(out["batched"])
    verdict("batched median latency (ms)", med, "<= %d" % (max_latency_ms + LINK_RTT_MS),
            med <= max_latency_ms + LINK_RTT_MS)


WALL_OFFSET = time.time() - time.monotonic()


def wall_of(mono):
    return mono + WALL_OFFSET


def bench_fleet(tmp):
    n = ARGS.fleet or int(os.environ.get("FLEET", "20" if QUICK else "200"))
    outage = ARGS.outage or float(os.environ.get("OUTAGE", "20"))
    rmin, rmax = 1.0, 8.0
    print("\n== 9. A fleet through a broker restart: %d gateway processes (one sensor each, "
          "every 1 s), broker down %.0f s, reconnect_min_s %g, reconnect_max_s %g" %
          (n, outage, rmin, rmax), flush=True)
    from fleet import Fleet
    broker = harness.Broker(tmp)
    fleet = Fleet(tmp, broker, n, interval_s=1.0, reconnect_min_s=rmin, reconnect_max_s=rmax,
                  health_interval_s=3600)
    try:
        started = time.time()
        fleet.start()
        fleet.wait_connected(started, 120)
        time.sleep(5)
        wall, mono = fleet.restart_broker(outage)
        fleet.wait_connected(wall, 4 * rmax + 60)
        fleet.wait_drained(wall + 1, 600)
        figs = fleet.figures(wall, mono)
        rcs = fleet.stop()
    finally:
        fleet.close()
        broker.stop()
    acc = fleet.account()
    made = sum(a["made"] for a in acc.values())
    delivered = sum(a["delivered"] for a in acc.values())
    kept = sum(a["kept"] for a in acc.values())
    missing = sum(len(a["missing"]) for a in acc.values())
    print("  connects per second after the restart (broker's log): %s" % figs["per_s"])
    print("  all %d back within %.1f s; every backlog delivered %.1f s after the restart"
          % (figs["connected"], figs["all_back_s"], figs["all_drained_s"]))
    print("  made %d, delivered %d, still stored %d, missing %d; clean stops %d of %d"
          % (made, delivered, kept, missing, rcs.count(0), n), flush=True)
    record("fleet", n=n, outage_s=outage, reconnect_min_s=rmin, reconnect_max_s=rmax,
           figures=figs, made=made, delivered=delivered, kept=kept, missing=missing)
    verdict("peak / mean connects per second", figs["peak_over_mean"], "<= 2",
            figs["peak_over_mean"] <= 2)
    verdict("all reconnected", figs["connected"], "= %d" % n, figs["connected"] == n)
    verdict("readings missing", missing, "= 0", missing == 0)


# ---- main ----

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    head = subprocess.run(["git", "-C", SRC, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain"], capture_output=True,
                           text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_mb": mem, "kernel": platform.release(),
            "commit": head, "uncommitted": bool(dirty),
            "load": open("/proc/loadavg").read().split()[:3]}


def main():
    m = machine()
    RESULTS["machine"] = m
    print("citygate benchmarks%s: %d repetitions each" % (" (QUICK)" if QUICK else "", REPS))
    print("machine: %d CPUs, %s, %d MB; load %s; commit %s%s" % (
        m["nproc"], m["cpu"], m["mem_mb"], " ".join(m["load"]), m["commit"][:12],
        " with uncommitted changes" if m["uncommitted"] else ""), flush=True)
    only = set(ARGS.only.split(","))
    tmp = harness.TempDir()
    broker = harness.Broker(tmp)
    try:
        if "1" in only:
            bench_throughput(tmp, broker)
        if "2" in only:
            bench_drain(tmp)
        if "3" in only:
            bench_footprint(tmp, broker)
        if "4" in only:
            bench_bus(tmp, broker)
        if "5" in only:
            bench_profile(tmp, broker)
        if "6" in only:
            bench_wire(tmp)
        if "7" in only:
            bench_drain_link(tmp)
        if "8" in only:
            bench_latency(tmp)
        if "9" in only:
            bench_fleet(tmp)
    finally:
        broker.stop()
        if ARGS.json:
            with open(ARGS.json, "w") as f:
                json.dump(RESULTS, f, indent=1)
        if os.environ.get("KEEP_TMP"):
            print("kept %s" % tmp.path)
        else:
            tmp.remove()


if __name__ == "__main__":
    main()
