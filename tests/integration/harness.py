"""Test harness: a real mosquitto, citygate-sim, the citygate daemon and a subscriber.

Every test starts its own processes on free loopback ports in a temporary folder
and stops them at the end. Nothing here mocks the code under test.
"""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("CG_BINARY_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SRC = os.environ.get("CG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
CITYGATE = os.path.join(BIN, "citygate")
sys.path.insert(0, os.path.join(SRC, "tests", "tools"))
from linkemu import Link  # noqa: E402
SIM = os.path.join(BIN, "citygate-sim")
# Profiles that are examples of the format, not devices, and so are not shipped
# (traffic-counter): a test that uses one passes this folder to citygate-sim
# (--profile-dir) and to the gateway (profile_dirs), as a user would.
EXAMPLE_PROFILES = os.path.join(SRC, "examples", "profiles")


# Every process a test starts, so that a failing test leaves none running.
_started = []


def _track(proc):
    _started.append(proc)
    return proc


def kill_leftovers():
    """Kills what the last test started and did not stop (it failed midway)."""
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate until it is true; fails the test with what after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def check(cond, message):
    if not cond:
        raise AssertionError(message)


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="cg-test-")
        # mosquitto drops to its own user; let it write its persistence file here.
        os.chmod(self.path, 0o777)

    def file(self, name, text=None, mode=None):
        p = os.path.join(self.path, name)
        if text is not None:
            with open(p, "w") as f:
                f.write(text)
            if mode is not None:
                os.chmod(p, mode)
        return p

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Broker:
    """mosquitto on a free loopback port, with persistence so that a counting
    subscriber's session survives a broker restart."""

    def __init__(self, tmp, port=None, extra=""):
        self.tmp = tmp
        self.port = port or free_port()
        self.conf = tmp.file("mosquitto-%d.conf" % self.port,
                             "listener %d 127.0.0.1\nallow_anonymous true\n"
                             "persistence true\npersistence_location %s/\n"
                             "persistence_file mosquitto-%d.db\n"
                             "max_queued_messages 0\nmax_inflight_messages 0\n"
                             "user root\n%s"
                             % (self.port, tmp.path, self.port, extra))
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.tmp.file("mosquitto-%d.log" % self.port), "a")
        self.proc = _track(subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.log,
                                            stderr=subprocess.STDOUT))

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(up, 10, "mosquitto on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        self.log.close()


class Subscriber:
    """mosquitto_sub with a persistent session (QoS 1, clean session off), so
    that nothing the broker accepted is missed while it reconnects."""

    def __init__(self, broker, topic, client_id=None, retained=True):
        self.messages = []  # (topic, payload text, arrival monotonic time)
        self.lock = threading.Lock()
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic,
                "-q", "1", "-v", "-c", "-i", client_id or "cg-test-sub-%d" % os.getpid(),
                "-k", "5"]
        if not retained:
            args.append("-R")
        self.proc = _track(subprocess.Popen(args, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True, bufsize=1))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.3)  # let the subscription reach the broker

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            topic, _, payload = line.partition(" ")
            with self.lock:
                self.messages.append((topic, payload, time.monotonic()))

    def received(self, suffix=None):
        with self.lock:
            return [(t, p, at) for (t, p, at) in self.messages
                    if suffix is None or t.endswith(suffix)]

    def readings(self):
        """Parsed native readings (topics other than status, health and sensor state)."""
        out = []
        for t, p, at in self.received():
            if t.endswith("/status") or t.endswith("/health") or t.endswith("/state"):
                continue
            out.append((t, json.loads(p), at))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class Sim:
    """citygate-sim with the given arguments; parses the endpoints it prints."""

    def __init__(self, tmp, args):
        self.log = open(tmp.file("sim-%d.log" % len(os.listdir(tmp.path))), "w")
        self.proc = _track(subprocess.Popen([SIM] + args, stdout=subprocess.PIPE,
                                            stderr=self.log, text=True, cwd=SRC))
        self.endpoints = []
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                break
            self.endpoints.append(line.split())
        check(self.proc.poll() is None, "citygate-sim exited early; see its log")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(10)
            check(rc == 0, "citygate-sim exited with %d" % rc)
        self.log.close()


class Gateway:
    """The citygate daemon on a config given as a dict."""

    def __init__(self, tmp, config, name="gateway"):
        self.tmp = tmp
        self.name = name
        self.config_path = tmp.file(name + ".json", json.dumps(config, indent=2))
        self.log_path = tmp.file(name + ".log")
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = _track(subprocess.Popen([CITYGATE, "-c", self.config_path], stdout=self.log,
                                            stderr=subprocess.STDOUT))
        return self

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.log.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()


def schema_for(topic, payload):
    """The schema a native-format message on topic must satisfy."""
    if topic.endswith("/status"):
        return "status"
    if topic.endswith("/health"):
        return "health"
    if topic.endswith("/state"):
        return "sensor-state"
    return "reading-" + json.loads(payload)["kind"]


def stored_readings(path):
    """The readings an outbox file holds (undelivered, not lost), oldest first, as
    (seq, topic, payload bytes, created_ms), decoded from its rows of up to 64 readings
    as docs/operations.md describes, through a connection of the test's own."""
    db = sqlite3.connect(path)
    try:
        batches = db.execute("SELECT first_seq, n, gone, idx, data FROM batches"
                             " ORDER BY first_seq").fetchall()
    finally:
        db.close()
    out = []
    for first, n, gone, idx, data in batches:
        at = 0
        for i in range(n):
            created, topic_len, payload_len = struct.unpack_from("<qII", idx, 16 * i)
            topic = data[at:at + topic_len].decode()
            payload = data[at + topic_len:at + topic_len + payload_len]
            at += topic_len + payload_len
            if not (gone >> i) & 1:
                out.append((first + i, topic, payload, created))
        if at != len(data):
            raise AssertionError("outbox row at seq %d: idx and data disagree" % first)
    return out


def validate_messages(tmp, messages, schema_for=schema_for):
    """Validates every (topic, payload) against its JSON Schema in schemas/
    with ajv (a real validator, installed by scripts/setup.sh); fails the
    test naming the first invalid payload."""
    groups = {}
    for topic, payload, *_ in messages:
        groups.setdefault(schema_for(topic, payload), []).append(payload)
    check(groups, "no messages to validate")
    for name, payloads in sorted(groups.items()):
        folder = os.path.join(tmp.path, "ajv-" + name)
        os.makedirs(folder, exist_ok=True)
        for i, p in enumerate(payloads):
            with open(os.path.join(folder, "%06d.json" % i), "w") as f:
                f.write(p)
        schema = os.path.join(SRC, "schemas", name + ".schema.json")
        # The schemas this one refers to ("other.schema.json#..."), for ajv -r.
        refs = sorted(set(re.findall(r'"([a-z0-9-]+\.schema\.json)#', open(schema).read())))
        r = subprocess.run(["ajv", "validate", "--spec=draft2020", "-c", "ajv-formats",
                            "-s", schema] +
                           sum((["-r", os.path.join(SRC, "schemas", f)] for f in refs), []) +
                           ["-d", os.path.join(folder, "*.json")],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "%d %s payloads, not all valid:\n%s%s"
              % (len(payloads), name, r.stdout[-2000:], r.stderr[-2000:]))
    return {k: len(v) for k, v in groups.items()}


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def base_config(tmp, broker, buses, sensors, **over):
    cfg = {
        "gateway": {"id": "gw-test-1", "health_interval_s": over.pop("health_interval_s", 2)},
        "mqtt": {"uri": "tcp://127.0.0.1:%d" % broker.port, "topic_prefix": "city/test",
                 "client_id": "gw-test-1", "reconnect_min_s": 0.2, "reconnect_max_s": 1},
        "store": {"path": os.path.join(tmp.path, "outbox.db")},
        "buses": buses,
        "sensors": sensors,
    }
    for k, v in over.items():
        cfg[k].update(v)
    return cfg


SKIPPED = re.compile(r"seq (\d+) to (\d+) are skipped")


def skipped_seqs(log_text):
    """The seqs that starts after an unclean stop skipped (reserved by the process that
    stopped, never given to a reading), from the gateway's log."""
    out = set()
    for lo, hi in SKIPPED.findall(log_text):
        out.update(range(int(lo), int(hi) + 1))
    return out


def seq_report(readings, skipped=()):
    """Returns (sorted unique seqs, missing seqs, duplicate count)."""
    seqs = [r["seq"] for _, r, _ in readings]
    unique = sorted(set(seqs))
    missing = []
    if unique:
        have = set(unique)
        missing = [s for s in range(unique[0], unique[-1] + 1)
                   if s not in have and s not in skipped]
    return unique, missing, len(seqs) - len(unique)


def main(tests):
    """Runs each test function with a fresh temporary folder; prints a summary
    line that ctest and CI read, and exits non-zero on any failure."""
    passed = failed = 0
    only = sys.argv[1:]
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        tmp = TempDir()
        started = time.monotonic()
        try:
            fn(tmp)
            kill_leftovers()
            passed += 1
            print("PASS %s (%.1f s)" % (fn.__name__, time.monotonic() - started), flush=True)
            tmp.remove()
        except Exception as e:  # report and go on with the next test
            kill_leftovers()
            failed += 1
            print("FAIL %s: %s (files kept in %s)" % (fn.__name__, e, tmp.path), flush=True)
            for name in sorted(os.listdir(tmp.path)):
                if name.endswith(".log"):
                    with open(os.path.join(tmp.path, name), errors="replace") as f:
                        tail = f.read()[-3000:]
                    print("---- %s (tail)\n%s" % (name, tail), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


class SubscriberWith(Subscriber):
    """A Subscriber whose mosquitto_sub gets extra arguments (e.g. -u/-P for a
    broker that refuses anonymous clients, or --cafile and a port for TLS)."""

    def __init__(self, broker, topic, extra_args, client_id=None, retained=True):
        self.messages = []
        self.lock = threading.Lock()
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic,
                "-q", "1", "-v", "-c", "-i", client_id or "cg-test-sub-%d" % os.getpid(),
                "-k", "5"] + list(extra_args)
        if not retained:
            args.append("-R")
        self.proc = _track(subprocess.Popen(args, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True, bufsize=1))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.3)


def Uplink(broker, **link):
    """A link emulator (tests/tools/linkemu.py) between the gateway and the
    broker: cut() drops its connections and refuses new ones, as a lost
    backhaul would; restore() lets them through again; rtt_ms, rate_bps and
    loss bursts make it a cellular link. Subscribers talk to the broker
    directly, so they miss nothing and redeliver nothing because of the
    link: duplicates they see are the gateway's."""
    return Link(broker.port, **link)
