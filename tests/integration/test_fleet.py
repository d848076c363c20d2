"""A fleet of gateways and a broker restart: every gateway comes back within the
reconnect schedule's bound and not one reading of any of them is missing."""
import time

from fleet import Fleet
from harness import Broker, check, main

N = 20
MIN_S, MAX_S = 0.5, 4.0


def test_fleet_broker_restart(tmp):
    """20 gateways, 5 readings/s each; the broker stops for 8 s and comes back: all
    reconnect, within two capped windows of the schedule (docs/configuration.md,
    "Reconnecting a fleet") plus a margin for a loaded machine, and every seq of
    every gateway arrives (or, made in the last instant, stays in its outbox)."""
    broker = Broker(tmp)
    fleet = Fleet(tmp, broker, N, interval_s=0.2, reconnect_min_s=MIN_S,
                  reconnect_max_s=MAX_S)
    try:
        started = time.time()
        fleet.start()
        fleet.wait_connected(started, 30)
        time.sleep(3)
        wall, mono = fleet.restart_broker(8)
        fleet.wait_connected(wall, 2 * MAX_S + 10)
        fleet.wait_drained(wall + 1, 60)
        figs = fleet.figures(wall, mono)
        rcs = fleet.stop()
        check(rcs == [0] * N, "clean stops: %s" % rcs)
    finally:
        fleet.close()
        broker.stop()
    acc = fleet.account()
    made = sum(a["made"] for a in acc.values())
    delivered = sum(a["delivered"] for a in acc.values())
    kept = sum(a["kept"] for a in acc.values())
    missing = {g: a["missing"] for g, a in acc.items() if a["missing"]}
    print("  fleet of %d, broker down 8 s: connects/s after the restart %s (peak/mean "
          "%.2f), all back within %.1f s, all backlogs in %.1f s; made %d, delivered %d, "
          "kept %d, missing %d"
          % (N, figs["per_s"], figs["peak_over_mean"], figs["all_back_s"],
             figs["all_drained_s"], made, delivered, kept,
             sum(len(m) for m in missing.values())), flush=True)
    check(figs["connected"] == N, "%d of %d reconnected" % (figs["connected"], N))
    check(all(a["made"] >= 40 for a in acc.values()), "every gateway made readings")
    check(not missing, "missing seqs: %s" % {g: m[:10] for g, m in missing.items()})
    check(delivered + kept >= made, "made %d, delivered %d, kept %d" % (made, delivered, kept))


if __name__ == "__main__":
    main([test_fleet_broker_restart])
