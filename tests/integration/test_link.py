"""The link emulator honours its limits, and the gateway delivers everything over a
cellular-like link (100 ms round trip, a bandwidth cap, loss bursts)."""
import socket
import threading
import time

from harness import (Broker, Gateway, Link, Sim, Subscriber, Uplink, base_config, check, main,
                     seq_report, stored_readings, wait_for)


class Echo:
    """A TCP server on loopback that echoes (or, with sink, only counts) what it gets."""

    def __init__(self, sink=False):
        self.sink = sink
        self.received = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.listener.accept()
        while True:
            data = conn.recv(65536)
            if not data:
                return
            self.received += len(data)
            if not self.sink:
                conn.sendall(data)


def round_trip(sock, n=16):
    start = time.monotonic()
    sock.sendall(b"x" * n)
    got = 0
    while got < n:
        got += len(sock.recv(n - got))
    return time.monotonic() - start


def test_link_limits(tmp):
    """Round trip, bandwidth and a loss burst, each measured through the relay."""
    echo = Echo()
    link = Link(echo.port, rtt_ms=100)
    s = socket.create_connection(("127.0.0.1", link.port))
    rtts = [round_trip(s) for _ in range(5)]
    check(min(rtts) >= 0.1, "a round trip takes the link's 100 ms at least: %r" % rtts)
    check(sorted(rtts)[2] < 0.15, "and not much more: %r" % rtts)
    link.stall(0.4)
    stalled = round_trip(s)
    check(stalled >= 0.4, "a loss burst holds the link back: %.3f s" % stalled)
    s.close()
    link.close()

    sink = Echo(sink=True)
    rate = 2_000_000
    link = Link(sink.port, rate_bps=rate)
    s = socket.create_connection(("127.0.0.1", link.port))
    size = 300_000
    start = time.monotonic()
    s.sendall(b"y" * size)
    wait_for(lambda: sink.received >= size, 20, "the bytes through the capped link")
    took = time.monotonic() - start
    expect = size * 8 / rate
    check(expect * 0.95 <= took <= expect * 1.5,
          "%d bytes at %d bit/s took %.2f s, the cap allows %.2f s" % (size, rate, took, expect))
    # The counters the benchmarks' bytes per reading rest on: the sink answers
    # nothing, so every byte relayed went from the client to the server.
    check(link.bytes_sent() == size and link.bytes_relayed() == size,
          "counted %d sent, %d relayed of %d" % (link.bytes_sent(), link.bytes_relayed(), size))
    s.close()
    link.close()
    echo = Echo()  # it serves one connection
    link = Link(echo.port)
    s = socket.create_connection(("127.0.0.1", link.port))
    round_trip(s, 1000)
    wait_for(lambda: link.bytes_relayed() == 2000, 5, "the echo counted")
    check(link.bytes_sent() == 1000, "echoed: %d sent of %d relayed"
          % (link.bytes_sent(), link.bytes_relayed()))
    s.close()
    link.close()


def test_backlog_over_cellular(tmp):
    """A backlog made while the uplink was down drains over a 100 ms, 5 Mbit/s link
    with a loss burst every 2 s: every reading arrives, none twice beyond the
    window, and the drain is paced by the window per round trip (QoS 1)."""
    broker = Broker(tmp)
    sim = Sim(tmp, ["--tcp", "0"] + sum((["--slave", "%d:aqt530" % u] for u in (1, 2)), []))
    port = int(sim.endpoints[0][2])
    buses = [{"id": "lan", "type": "modbus-tcp", "host": "127.0.0.1", "port": port}]
    sensors = [{"id": "aq-%d" % u, "bus": "lan", "driver": "modbus", "profile": "aqt530",
                "unit_id": u, "interval_s": 0.05} for u in (1, 2)]
    link = Uplink(broker, rtt_ms=100, rate_bps=5_000_000, loss_every_s=2, loss_burst_ms=300)
    link.cut()
    sub = Subscriber(broker, "city/test/+/air-quality/#")
    window = 16
    cfg = base_config(tmp, broker, buses, sensors,
                      mqtt={"uri": "tcp://127.0.0.1:%d" % link.port, "inflight": window})
    gw = Gateway(tmp, cfg).start()
    try:
        time.sleep(4)  # about 160 readings wait in the outbox
        gw.proc.send_signal(19)  # SIGSTOP: the backlog stops growing
        link.restore()
        gw.proc.send_signal(18)  # SIGCONT
        start = time.monotonic()
        wait_for(lambda: "connected" in gw.log_text(), 20, "the gateway to connect")
        time.sleep(3)
        took = time.monotonic() - start
        check(gw.stop() == 0, "clean stop")
        time.sleep(0.5)
        readings = [r for r in sub.readings() if r[1]["sensor"].startswith("aq-")]
        unique, missing, dups = seq_report(readings)
        left = {seq for seq, _, _, _ in stored_readings(cfg["store"]["path"])}
        lost = [s for s in range(1, max(unique + list(left)) + 1)
                if s not in set(unique) and s not in left]
        check(len(unique) > 100 and not lost,
              "every reading delivered or still stored: %d delivered, lost %r" %
              (len(unique), lost[:20]))
        check(dups <= window, "duplicates within the window: %d" % dups)
        rate = len(unique) / took
        print("over the link: %d delivered in %.1f s (%.0f/s, the window allows %.0f/s), "
              "%d still stored, %d duplicates" % (len(unique), took, rate, window / 0.1,
                                                 len(left), dups))
        check(rate <= window / 0.1 * 1.1,
              "QoS 1 moves at most window/RTT over the link: %.0f readings/s" % rate)
    finally:
        sub.stop()
        sim.stop()
        link.close()
        broker.stop()


if __name__ == "__main__":
    main([test_link_limits, test_backlog_over_cellular])
