"""A link emulator: a TCP relay on loopback that puts a round-trip delay, a
bandwidth cap and loss bursts between a client and a server, as a cellular
uplink does between a roadside box and the city's broker.

    link = Link(target_port, rtt_ms=100, rate_bps=5_000_000)
    ... connect the client to 127.0.0.1:link.port ...
    link.cut(); link.restore(); link.stall(0.5); link.close()

Each direction delays every chunk by half the round trip, and serialises it at
rate_bps: a chunk leaves no earlier than it arrived plus the one-way delay,
and no earlier than the previous chunk has finished leaving. So a sender that
keeps the link busy moves rate_bps, and a request-response exchange takes at
least rtt_ms. A loss burst (stall(), or every loss_every_s for loss_burst_ms)
holds both directions back, as TCP's retransmissions after a burst of lost
segments would; nothing is dropped, since TCP would deliver it in the end.
cut() drops the connections and refuses new ones until restore().

Run as a program it relays until killed, for benchmarks:
    python3 linkemu.py --listen PORT --target PORT --rtt-ms 100 --rate-bps 5000000
"""
import argparse
import collections
import socket
import threading
import time


class _Direction:
    """One direction of one connection: a reader thread queues chunks with
    the time each may leave; a writer thread sends them then."""

    def __init__(self, link, src, dst, upstream):
        self.link = link
        self.upstream = upstream  # client to server
        self.src, self.dst = src, dst
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.free_at = 0.0  # when the last queued chunk has left the link
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self):
        try:
            while True:
                data = self.src.recv(16384)
                if not data:
                    break
                now = time.monotonic()
                with self.cond:
                    start = max(now + self.link.rtt_s / 2, self.free_at)
                    if self.link.rate_bps:
                        self.free_at = start + len(data) * 8 / self.link.rate_bps
                    else:
                        self.free_at = start
                    self.queue.append((self.free_at, data))
                    self.cond.notify()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify()

    def _write(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.closed:
                        self.cond.wait()
                    if not self.queue:
                        break
                    due, data = self.queue.popleft()
                while True:
                    wait = max(due, self.link.stalled_until()) - time.monotonic()
                    if wait <= 0:
                        break
                    time.sleep(min(wait, 0.05))
                self.dst.sendall(data)
                self.link._count(len(data), self.upstream)
        except OSError:
            pass
        for s in (self.src, self.dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Link:
    def __init__(self, target_port, rtt_ms=0, rate_bps=0, loss_every_s=0, loss_burst_ms=0,
                 listen_port=0):
        self.target = target_port
        self.rtt_s = rtt_ms / 1000.0
        self.rate_bps = rate_bps
        self.loss_every_s = loss_every_s
        self.loss_burst_s = loss_burst_ms / 1000.0
        self.started = time.monotonic()
        self.up = True
        self.lock = threading.Lock()
        self.conns = []
        self.bytes = 0
        self.bytes_up = 0  # of self.bytes, client to server
        self.stall_until = 0.0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", listen_port))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                up = self.up
            if not up:
                client.close()
                continue
            self._relay(client)

    def _relay(self, client):
        """Connects an accepted client to the target and relays both ways; a
        subclass may look at (or answer) the client first."""
        try:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=2)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.conns += [client, server]
        _Direction(self, client, server, True)
        _Direction(self, server, client, False)

    def _count(self, n, upstream):
        with self.lock:
            self.bytes += n
            if upstream:
                self.bytes_up += n

    def bytes_relayed(self):
        """Bytes delivered in both directions since the link was made."""
        with self.lock:
            return self.bytes

    def bytes_sent(self):
        """Bytes the clients sent through the link (TCP payload: MQTT, or TLS records
        with TLS) since it was made; the server's answers are bytes_relayed() less
        these."""
        with self.lock:
            return self.bytes_up

    def stalled_until(self):
        """The end of the loss burst in progress, or 0."""
        until = self.stall_until
        if self.loss_every_s and self.loss_burst_s:
            phase = (time.monotonic() - self.started) % self.loss_every_s
            if phase < self.loss_burst_s:
                until = max(until, time.monotonic() - phase + self.loss_burst_s)
        return until

    def stall(self, seconds):
        """A loss burst now: nothing moves either way for seconds."""
        self.stall_until = time.monotonic() + seconds

    def cut(self):
        with self.lock:
            self.up = False
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self):
        with self.lock:
            self.up = True

    def close(self):
        self.cut()
        self.listener.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--rtt-ms", type=float, default=0)
    ap.add_argument("--rate-bps", type=float, default=0)
    ap.add_argument("--loss-every-s", type=float, default=0)
    ap.add_argument("--loss-burst-ms", type=float, default=0)
    a = ap.parse_args()
    Link(a.target, a.rtt_ms, a.rate_bps, a.loss_every_s, a.loss_burst_ms, a.listen)
    print("ready", flush=True)
    while True:
        time.sleep(3600)
