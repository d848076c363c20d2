"""No one gets in: TLS with certificates the test makes (right CA and client
certificate accepted; wrong CA, wrong host name and a missing client
certificate refused; never plain text), private secrets, and no listening
socket. Each test prints a line of figures that docs/security.md quotes."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import (CITYGATE, Broker, Gateway, Sim, Subscriber, SubscriberWith, base_config,
                     check, main, run, wait_for)


# ---- certificates ----

def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, "openssl %s: %s" % (" ".join(args[:2]), r.stderr[-500:]))


def make_ca(folder, name):
    """A self-signed CA: NAME.key, NAME.crt."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
            "-subj", "/CN=citygate test %s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return os.path.join(folder, name + ".crt")


def make_cert(folder, name, ca, cn, san=None, usage="serverAuth"):
    """A certificate NAME.crt with key NAME.key signed by CA, for CN and SAN."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=folder)
    ext = os.path.join(folder, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", ext, cwd=folder)
    return os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")


class Pki:
    """The test's CA, a server certificate for 127.0.0.1 and localhost, one
    for another host name, a client certificate, and an unrelated CA."""

    def __init__(self, tmp):
        d = os.path.join(tmp.path, "pki")
        os.mkdir(d)
        self.ca = make_ca(d, "ca")
        self.other_ca = make_ca(d, "other-ca")
        self.server = make_cert(d, "server", "ca", "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
        self.wrong_name = make_cert(d, "wrong-name", "ca", "other.example", "DNS:other.example")
        self.client = make_cert(d, "client", "ca", "citygate-gw", usage="clientAuth")


def tls_listener(port, pki, server):
    cert, key = server
    return ("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
            "require_certificate true\nuse_identity_as_username true\n"
            % (port, pki.ca, cert, key))


class FirstBytes:
    """A loopback TCP forwarder in front of a broker port that records the
    first byte every client sends: 0x16 opens a TLS handshake, 0x10 a plain
    MQTT CONNECT. It proves what went over the wire, whatever the logs say."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.first = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            conn.close()
            return
        recorded = False
        try:
            while not self.closing:
                r, _, _ = select.select([conn, up], [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is conn and not recorded:
                        self.first.append(data[0])
                        recorded = True
                    (up if s is conn else conn).sendall(data)
        except OSError:
            return
        finally:
            conn.close()
            up.close()

    def close(self):
        self.closing = True
        self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_connections(broker, client_id):
    """Connections client_id made to the broker's plain listener, from its log."""
    with open(broker.tmp.file("mosquitto-%d.log" % broker.port)) as f:
        log = f.read()
    plain_from = set(re.findall(r"New connection from ([\d.]+:\d+) on port %d\." % broker.port,
                                log))
    mine = re.findall(r"New client connected from ([\d.]+:\d+) as %s " % re.escape(client_id),
                      log)
    return [m for m in mine if m in plain_from], log


def tcp_load(tmp, faulty=False):
    """Two AQT530s on a Modbus TCP endpoint, and with faulty a third that
    answers with exceptions (which the driver logs at debug level)."""
    units = (1, 2, 3) if faulty else (1, 2)
    sim = Sim(tmp, ["--tcp", "0", "--slave", "1:aqt530", "--slave", "2:aqt530"] +
              (["--slave", "3:aqt530:exception"] if faulty else []))
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1",
              "port": int(sim.endpoints[0][2])}]
    sensors = [{"id": "aq-%d" % u, "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": u, "interval_s": 0.2} for u in units]
    return sim, buses, sensors


def tls_run(tmp, broker, sub, sim_bits, name, port, tls, seconds):
    """Runs a gateway against ssl://127.0.0.1:port (through a FirstBytes) for
    seconds or until readings arrive; returns (readings, first bytes, log)."""
    _, buses, sensors = sim_bits
    sniff = FirstBytes(port)
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["mqtt"]["uri"] = "ssl://127.0.0.1:%d" % sniff.port
    cfg["mqtt"]["tls"] = tls
    cfg["store"]["path"] = os.path.join(tmp.path, "outbox-%s.db" % name)
    gw = Gateway(tmp, cfg, name=name)
    r = run([CITYGATE, "--check", "-c", gw.config_path])
    check(r.returncode == 0, "%s: --check refuses the TLS config: %s" % (name, r.stdout))
    before = len(sub.readings())
    gw.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(sub.readings()) <= before:
            time.sleep(0.2)
        time.sleep(1)
        check(gw.stop() == 0, "%s: clean stop" % name)
    finally:
        sniff.close()
    got = sub.readings()[before:]
    return got, sniff.first, gw.log_text(), cfg


def test_tls(tmp):
    pki = Pki(tmp)
    good_port, wrong_name_port = free_port(), free_port()
    broker = Broker(tmp, extra=tls_listener(good_port, pki, pki.server) +
                    tls_listener(wrong_name_port, pki, pki.wrong_name))
    sim_bits = tcp_load(tmp)
    sub = Subscriber(broker, "city/test/#", retained=False)
    ca, (cert, key) = pki.ca, pki.client
    results = {}
    try:
        results["good"] = tls_run(tmp, broker, sub, sim_bits, "good", good_port,
                                  {"ca_file": ca, "cert_file": cert, "key_file": key}, 20)
        results["wrong-ca"] = tls_run(tmp, broker, sub, sim_bits, "wrong-ca", good_port,
                                      {"ca_file": pki.other_ca, "cert_file": cert,
                                       "key_file": key}, 6)
        results["wrong-name"] = tls_run(tmp, broker, sub, sim_bits, "wrong-name",
                                        wrong_name_port,
                                        {"ca_file": ca, "cert_file": cert, "key_file": key}, 6)
        results["no-client-cert"] = tls_run(tmp, broker, sub, sim_bits, "no-client-cert",
                                            good_port, {"ca_file": ca}, 6)
    finally:
        sub.stop()
        sim_bits[0].stop()
        broker.stop()
    plain, mlog = plain_connections(broker, "gw-test-1")
    for name, (got, first, log, cfg) in results.items():
        refusal = [l for l in log.splitlines() if "mqtt:" in l and "connected" not in l]
        st = json.loads(run([CITYGATE, "--status", "-c",
                             os.path.join(tmp.path, name + ".json")]).stdout)
        print("  tls %s: %d readings arrived, %d connections all TLS: %s, %d readings kept in "
              "the outbox, log: %r" % (name, len(got), len(first),
                                       all(b == 0x16 for b in first), st["rows"],
                                       refusal[0] if refusal else ""), flush=True)
        check(first, "%s: the gateway never connected" % name)
        check(all(b == 0x16 for b in first), "%s: a connection did not start with a TLS "
              "handshake: first bytes %r" % (name, first))
        if name == "good":
            check(len(got) >= 5, "good: readings arrive over TLS (%d)" % len(got))
        else:
            check(not got, "%s: %d readings went through" % (name, len(got)))
            check(st["rows"] > 0, "%s: the readings stay in the outbox" % name)
            check(len(refusal) == 1, "%s: one clear log line for the refusal: %r"
                  % (name, refusal[:3]))
    check(re.search(r"as gw-test-1 \([^)]*u'citygate-gw'\)", mlog),
          "the broker took the client certificate's CN as the user name")
    check(not plain, "the gateway connected to the plain-text listener: %r" % plain)
    check("peer did not return a certificate" in mlog or "certificate required" in mlog,
          "the broker asked for and missed the client certificate")
    # TLS settings with a plain-text uri are refused, never ignored.
    cfg = results["good"][3]
    cfg["mqtt"]["uri"] = "tcp://127.0.0.1:%d" % good_port
    bad = Gateway(tmp, cfg, name="tls-over-tcp")
    r = run([CITYGATE, "--check", "-c", bad.config_path])
    print("  tls over tcp://: --check exit %d: %s" % (r.returncode, r.stdout.strip()),
          flush=True)
    check(r.returncode == 1 and "/mqtt/tls: not allowed with a plain-text" in r.stdout,
          "--check accepts tls with a tcp:// uri: %d %r" % (r.returncode, r.stdout))


# ---- secrets ----

SECRET = "Sup3r-S3cret-Pa55word-7f1c"


def test_password_file_private(tmp):
    """A password file readable by group or others is refused by --check and
    by the daemon, with a clear error and a non-zero exit."""
    broker = Broker(tmp)
    sim, buses, sensors = tcp_load(tmp)
    try:
        figures, line = [], None
        for mode in (0o644, 0o640, 0o604):
            secret = tmp.file("mqtt-%o.pass" % mode, SECRET + "\n", mode)
            cfg = base_config(tmp, broker, buses, sensors)
            cfg["mqtt"].update({"username": "gw", "password_file": secret})
            gw = Gateway(tmp, cfg, name="open-%o" % mode)
            r = run([CITYGATE, "--check", "-c", gw.config_path])
            check(r.returncode == 1 and "/mqtt/password_file: must not be readable by group or "
                  "others (chmod 600)" in r.stdout, "--check with a %o password file: %d %r"
                  % (mode, r.returncode, r.stdout))
            d = run([CITYGATE, "-c", gw.config_path])
            check(d.returncode != 0, "the daemon runs with a %o password file" % mode)
            check("chmod 600" in d.stderr + d.stdout, "the daemon says why: %r" % d.stderr)
            check(SECRET not in r.stdout + r.stderr + d.stdout + d.stderr, "the secret leaked")
            figures.append("%o: --check exit %d, run exit %d" % (mode, r.returncode,
                                                                 d.returncode))
            line = line or (r.stdout.strip(), (d.stdout + d.stderr).strip())
        os.chmod(secret, 0o600)
        r = run([CITYGATE, "--check", "-c", gw.config_path])
        check(r.returncode == 0, "--check refuses a 600 password file: %r" % r.stdout)
        figures.append("600: --check exit 0")
    finally:
        sim.stop()
        broker.stop()
    print("  password file modes: " + "; ".join(figures), flush=True)
    print("  password file 644: --check says %r; the daemon says %r" % line, flush=True)


def start_verbose(gw):
    """Starts the daemon of gw with debug logging (-v)."""
    gw.log = open(gw.log_path, "a")
    gw.proc = harness._track(subprocess.Popen([CITYGATE, "-v", "-c", gw.config_path],
                                              stdout=gw.log, stderr=subprocess.STDOUT))


def test_secrets_not_logged(tmp):
    """With debug logging, through a refused login, a reload that reads the
    fixed password, an accepted login, a second reload and a stop, neither the password nor the TLS key appear in the log, in
    --check, --once or --status output."""
    pwfile = tmp.file("mosquitto.passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", pwfile, "gw", SECRET], check=True)
    subprocess.run(["mosquitto_passwd", "-b", pwfile, "sub", "sub-pass"], check=True)
    broker = Broker(tmp, extra="allow_anonymous false\npassword_file %s\n" % pwfile)
    sim, buses, sensors = tcp_load(tmp, faulty=True)
    sub = SubscriberWith(broker, "city/test/#", ["-u", "sub", "-P", "sub-pass"], retained=False)
    wrong = "Wr0ng-" + SECRET
    secret = tmp.file("mqtt.pass", wrong + "\n", 0o600)
    cfg = base_config(tmp, broker, buses, sensors)
    cfg["mqtt"].update({"username": "gw", "password_file": secret})
    gw = Gateway(tmp, cfg)
    outputs = []
    try:
        for args in (["--check"], ["--once"], ["--status"], ["--check", "-v"]):
            r = run([CITYGATE] + args + ["-c", gw.config_path])
            outputs.append(r.stdout + r.stderr)
        start_verbose(gw)
        wait_for(lambda: "broker refused" in gw.log_text(), 20, "the refusal")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        # The reload reads the changed password file and renews the session.
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "mqtt: connected" in gw.log_text(), 20, "a connection after SIGHUP")
        wait_for(lambda: sub.readings(), 20, "readings with the right password")
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gw.log_text().count("reloaded") >= 2, 10, "a second reload")
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    log = gw.log_text()
    everything = log + "".join(outputs)
    debug = sum(1 for l in log.splitlines() if l.startswith("<7>"))
    print("  secrets: %d log lines (%d debug) and %d command outputs searched; password found "
          "%d times, wrong password %d times"
          % (len(log.splitlines()), debug, len(outputs), everything.count(SECRET),
             everything.count(wrong)), flush=True)
    check(debug > 0, "the run was not at debug level")
    check(SECRET not in everything and wrong not in everything, "a password leaked")
    check(gw.proc.returncode == 0, "the gateway ran")


# ---- no listening socket ----

def sockets_of(pid):
    """Inodes of the process's sockets (all threads share the fd table)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    return inodes


def socket_table(pid):
    """(protocol, state, local address, inode) of every socket in the
    process's network namespace."""
    rows = []
    for proto in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        try:
            with open("/proc/%d/net/%s" % (pid, proto)) as f:
                next(f)
                for line in f:
                    p = line.split()
                    rows.append((proto, p[3], p[1], p[9]))
        except FileNotFoundError:
            pass
    with open("/proc/%d/net/unix" % pid) as f:
        next(f)
        for line in f:
            p = line.split()
            # Flags 00010000 is __SO_ACCEPTCON: a listening unix socket.
            rows.append(("unix", "LISTEN" if int(p[3], 16) & 0x10000 else p[5], p[-1]
                         if len(p) > 7 else "", p[6]))
    return rows


def test_no_listening_socket(tmp):
    """While running (RTU and TCP buses, connected to the broker), none of
    the daemon's sockets listens: no TCP LISTEN, no bound UDP or raw socket,
    no listening unix socket."""
    link = os.path.join(tmp.path, "ttyRS485")
    rtu = Sim(tmp, ["--rtu", link, "--slave", "1:aqt530"])
    sim, buses, sensors = tcp_load(tmp)
    buses.append({"id": "rs485-1", "type": "modbus-rtu", "device": link})
    sensors.append({"id": "aq-rtu", "bus": "rs485-1", "driver": "modbus", "profile": "aqt530",
                    "unit_id": 1, "interval_s": 0.5})
    broker = Broker(tmp)
    sub = Subscriber(broker, "city/test/#", retained=False)
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors)).start()
    try:
        wait_for(lambda: {"aq-1", "aq-rtu"} <= {r["sensor"] for _, r, _ in sub.readings()}, 20,
                 "readings from both buses")
        mine = sockets_of(gw.proc.pid)
        table = [row for row in socket_table(gw.proc.pid) if row[3] in mine]
        ss = subprocess.run(["ss", "-lntupwx", "-p"], capture_output=True, text=True).stdout
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        rtu.stop()
        broker.stop()
    listening = [r for r in table if (r[0].startswith("tcp") and r[1] == "0A") or
                 r[0].startswith("udp") or r[0].startswith("raw") or r[1] == "LISTEN"]
    in_ss = [l for l in ss.splitlines() if "pid=%d," % gw.proc.pid in l]
    kinds = {}
    for r in table:
        kinds[r[0]] = kinds.get(r[0], 0) + 1
    print("  listening: %d sockets (%s), states %s, listening %d, in ss -l %d"
          % (len(mine), ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())),
             sorted({r[1] for r in table}), len(listening), len(in_ss)), flush=True)
    check(mine and len(table) == len(mine), "every socket of the daemon was found: %r %r"
          % (mine, table))
    check(not listening, "listening sockets: %r" % listening)
    check(not in_ss, "ss -l lists the daemon: %r" % in_ss)


def mapped_libraries(pid):
    """The file names of the shared objects mapped into a process."""
    with open("/proc/%d/maps" % pid) as f:
        return sorted({os.path.basename(ln.split()[5]) for ln in f
                       if len(ln.split()) > 5 and ".so" in ln.split()[5]})


def test_plain_tcp_maps_no_tls(tmp):
    """A gateway on a tcp:// broker, connected and publishing, has loaded the
    plain Paho and not mapped libssl or libcrypto: TLS code is loaded only
    for an ssl:// broker (test_tls shows that one works)."""
    sim, buses, sensors = tcp_load(tmp)
    broker = Broker(tmp)
    sub = Subscriber(broker, "city/test/#", retained=False)
    gw = Gateway(tmp, base_config(tmp, broker, buses, sensors), name="plain-maps").start()
    try:
        wait_for(lambda: sub.readings(), 20, "readings over tcp://")
        libs = mapped_libraries(gw.proc.pid)
        check(gw.stop() == 0, "clean stop")
    finally:
        sub.stop()
        sim.stop()
        broker.stop()
    print("  tcp:// gateway maps: %s" % ", ".join(libs), flush=True)
    check(any(l.startswith("libpaho-mqtt3a.so") for l in libs),
          "the plain Paho is not among the mapped libraries: %r" % libs)
    tls = [l for l in libs if l.startswith(("libssl", "libcrypto", "libpaho-mqtt3as"))]
    check(not tls, "a tcp:// gateway maps TLS libraries: %r" % tls)


if __name__ == "__main__":
    main([test_tls, test_password_file_private, test_secrets_not_logged,
          test_no_listening_socket, test_plain_tcp_maps_no_tls])
