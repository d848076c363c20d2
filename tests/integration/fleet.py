"""A fleet of citygate gateways against one mosquitto, for the fleet test and the fleet
benchmark: N gateway processes, one simulated AQT530 each (citygate-sim, up to 16
gateways per simulator, its most TCP clients), each with its own small outbox, all
publishing under one prefix, and one subscriber counting every gateway's seqs.

Connections are counted from the broker's own log ("New client connected ... as ID",
stamped in whole epoch seconds), so what the figures show is what the broker saw,
independent of the subscriber's own reconnect after a restart.
"""
import json
import math
import os
import re
import signal
import time
from datetime import datetime

from harness import CITYGATE, Gateway, Sim, Subscriber, check, run, skipped_seqs, \
    stored_readings, wait_for

PER_SIM = 16  # citygate-sim serves at most 16 TCP clients per endpoint
CONNECTED = re.compile(r"^(\d+): New client connected from \S+ as (\S+) ")


def ts_s(reading):
    """A reading's ts (RFC 3339, UTC) as seconds since the epoch."""
    return datetime.strptime(reading["ts"].replace("Z", "+0000"),
                             "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class Fleet:
    """n gateways gw-000 ... on broker, each polling one sensor every interval_s."""

    def __init__(self, tmp, broker, n, interval_s=0.2, reconnect_min_s=0.5,
                 reconnect_max_s=4, prefix="city/fleet", store_max_rows=100000,
                 health_interval_s=10, mqtt=None):
        self.tmp, self.broker, self.n, self.prefix = tmp, broker, n, prefix
        self.ids = ["gw-%03d" % g for g in range(n)]
        self.sims = []
        for s in range(math.ceil(n / PER_SIM)):
            units = min(PER_SIM, n - s * PER_SIM)
            self.sims.append(Sim(tmp, ["--tcp", "0", "--seed", str(s + 1)] +
                                 sum((["--slave", "%d:aqt530" % (u + 1)]
                                      for u in range(units)), [])))
        self.gateways, self.configs = [], []
        for g, gid in enumerate(self.ids):
            sim = self.sims[g // PER_SIM]
            cfg = {
                "gateway": {"id": gid, "health_interval_s": health_interval_s},
                "mqtt": dict({"uri": "tcp://127.0.0.1:%d" % broker.port,
                              "topic_prefix": prefix, "client_id": gid,
                              "reconnect_min_s": reconnect_min_s,
                              "reconnect_max_s": reconnect_max_s}, **(mqtt or {})),
                # Small stores: a fleet of 200 on one machine shares its disk.
                "store": {"path": os.path.join(tmp.path, gid + ".db"),
                          "max_rows": store_max_rows, "max_bytes": 16 << 20},
                "buses": [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1",
                           "port": int(sim.endpoints[0][2]), "timeout_ms": 500}],
                "sensors": [{"id": "aq", "bus": "lan", "driver": "modbus",
                             "profile": "aqt530", "unit_id": g % PER_SIM + 1,
                             "interval_s": interval_s}],
            }
            self.configs.append(cfg)
            self.gateways.append(Gateway(tmp, cfg, name=gid))
        # Readings only ({prefix}/{gw}/{kind}/{sensor}); a persistent session, so that
        # what the broker accepted while the subscriber reconnects is not missed.
        self.sub = Subscriber(broker, prefix + "/+/+/+", client_id="cg-fleet-sub",
                              retained=False)

    def start(self):
        for gw in self.gateways:
            gw.start()
        return self

    def connects(self, since=0):
        """(epoch second, client id) of every gateway connection the broker logged at
        or after since (epoch seconds)."""
        out = []
        with open(self.tmp.file("mosquitto-%d.log" % self.broker.port),
                  errors="replace") as f:
            for line in f:
                m = CONNECTED.match(line)
                if m and m.group(2) in self.ids and int(m.group(1)) >= int(since):
                    out.append((int(m.group(1)), m.group(2)))
        return out

    def wait_connected(self, since, timeout):
        """Waits until every gateway connected at or after since (epoch seconds)."""
        wait_for(lambda: len({c for _, c in self.connects(since)}) == self.n, timeout,
                 "all %d gateways connected" % self.n, interval=0.25)

    def restart_broker(self, outage_s):
        """Stops the broker for outage_s; returns the wall and monotonic time at which
        it was started again (before its listener was up)."""
        self.broker.stop()
        time.sleep(outage_s)
        wall, mono = time.time(), time.monotonic()
        self.broker.start()
        return wall, mono

    def readings_by_gateway(self):
        """{gateway id: [(reading, arrival monotonic time)]} in order of arrival."""
        out = {gid: [] for gid in self.ids}
        for topic, payload, at in self.sub.received():
            gid = topic[len(self.prefix) + 1:].split("/")[0]
            if gid in out:
                out[gid].append((json.loads(payload), at))
        return out

    def backlog_done(self, since_wall):
        """Gateways of which a reading made after since_wall arrived, with every seq
        before it: their backlog of the outage is delivered."""
        done = 0
        for gid, rs in self.readings_by_gateway().items():
            seqs = {r["seq"] for r, _ in rs}
            prefix = 0
            while prefix + 1 in seqs:
                prefix += 1
            if any(r["seq"] <= prefix and ts_s(r) > since_wall for r, _ in rs):
                done += 1
        return done

    def wait_drained(self, since_wall, timeout):
        wait_for(lambda: self.backlog_done(since_wall) == self.n, timeout,
                 "every gateway's backlog delivered", interval=0.5)

    def stop(self):
        """Stops every gateway cleanly; returns their exit statuses."""
        for gw in self.gateways:  # all at once, not one after the other's exit
            gw.proc.send_signal(signal.SIGTERM)
        rcs = []
        for gw in self.gateways:
            rcs.append(gw.proc.wait(30))
            gw.log.close()
        return rcs

    def close(self):
        self.sub.stop()
        for sim in self.sims:
            sim.stop()

    def account(self):
        """After stop(): per gateway, made (next_seq - 1 less the seqs skipped after an
        unclean stop), delivered (unique seqs received), kept (still in its outbox,
        undelivered but not lost) and missing (made, neither delivered nor kept)."""
        out = {}
        by_gw = self.readings_by_gateway()
        for gid, gw, cfg in zip(self.ids, self.gateways, self.configs):
            r = run([CITYGATE, "--status", "-c", gw.config_path])
            check(r.returncode == 0, "%s: --status failed: %s" % (gid, r.stderr))
            next_seq = json.loads(r.stdout)["next_seq"]
            skipped = skipped_seqs(gw.log_text())
            delivered = {rd["seq"] for rd, _ in by_gw[gid]}
            kept = {s for s, *_ in stored_readings(cfg["store"]["path"])}
            out[gid] = {"made": next_seq - 1 - len(skipped), "delivered": len(delivered),
                        "duplicates": len(by_gw[gid]) - len(delivered), "kept": len(kept),
                        "missing": sorted(set(range(1, next_seq)) - delivered - kept -
                                          skipped)}
        return out

    def figures(self, restart_wall, restart_mono):
        """What the broker restart looked like: connections per second after it (from
        the broker's log), peak over mean, the time until all were back and until every
        backlog (the readings made before restart_wall) had arrived."""
        conns = self.connects(restart_wall)
        first = {}
        for sec, cid in conns:
            first.setdefault(cid, sec)
        start = int(restart_wall)
        last = max(first.values()) if first else start
        per_s = [0] * (last - start + 1)
        for sec in first.values():
            per_s[sec - start] += 1
        mean = len(first) / len(per_s)
        drained = []
        for gid, rs in self.readings_by_gateway().items():
            arrived = {}
            for r, at in rs:
                arrived.setdefault(r["seq"], (ts_s(r), at))
            backlog = [at for ts, at in arrived.values() if ts <= restart_wall]
            if backlog:
                drained.append(max(backlog) - restart_mono)
        return {"connected": len(first), "per_s": per_s,
                "peak_over_mean": max(per_s) / mean if mean else float("inf"),
                # The broker stamps whole seconds: an upper bound.
                "all_back_s": last + 1 - restart_wall,
                "all_drained_s": max(drained) if drained else 0.0}
