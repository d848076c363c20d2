"""citygate --scan: finds the devices on a line at the line's own settings, fits the
shipped profiles, and prints a config that passes --check and --once."""
import json
import os
import re
import signal
import subprocess
import time

from harness import CITYGATE, SRC, Sim, check, main, run


def scan(args, **kw):
    return subprocess.run([CITYGATE, "--scan"] + args, capture_output=True, text=True,
                          timeout=300, **kw)


def test_scan_finds_line_settings_and_profiles(tmp):
    """citygate-sim at 19200 8E1 answers only at 19200 and one stop bit (what a pty
    can show), so the scan has to find the speed; slaves 3, 9 and 17 are fitted to
    aqt530, metsens600 and ld120, and the config it prints runs."""
    link = tmp.file("line.pty")
    sim = Sim(tmp, ["--rtu", link, "--baud", "19200", "--framing", "8E1",
                    "--slave", "3:aqt530", "--slave", "9:metsens600", "--slave", "17:ld120"])
    try:
        r = scan([link, "--units", "1-20", "--baud", "9600,19200", "--framing", "8N2,8E1",
                  "--timeout-ms", "100"])
        check(r.returncode == 0, "scan exit %d: %s" % (r.returncode, r.stderr))
        cfg = json.loads(r.stdout)
        bus = cfg["buses"][0]
        check((bus["baud"], bus["parity"], bus["data_bits"], bus["stop_bits"]) ==
              (19200, "E", 8, 1), "the line's settings: %r" % bus)
        check(bus["device"] == link, "the device as a config names it: %r" % bus["device"])
        found = sorted((s["unit_id"], s["profile"]) for s in cfg["sensors"])
        check(found == [(3, "aqt530"), (9, "metsens600"), (17, "ld120")],
              "devices and profiles: %r" % found)
        check("at 9600" in r.stderr and r.stderr.count("answers\n") == 3,
              "nobody answered at 9600 or at two stop bits: %s" % r.stderr)
        path = tmp.file("scanned.json", r.stdout)
        c = run([CITYGATE, "--check", "-c", path])
        check(c.returncode == 0, "the printed config passes --check: %s" % c.stdout)
        o = run([CITYGATE, "--once", "-c", path])
        check(o.returncode == 0, "--once on it: exit %d: %s" % (o.returncode, o.stderr))
        sensors = sorted(json.loads(line)["sensor"] for line in o.stdout.splitlines())
        check(sensors == ["aqt530-3", "ld120-17", "metsens600-9"],
              "a reading from each: %r" % sensors)
    finally:
        sim.stop()


def test_scan_stop_bits_and_tcp(tmp):
    """Two stop bits (Modbus's framing without parity) are found as such; over
    Modbus TCP only unit ids are probed."""
    link = tmp.file("line2.pty")
    sim = Sim(tmp, ["--rtu", link, "--baud", "9600", "--framing", "8N2", "--slave", "5:aqt530",
                    "--tcp", "0", "--slave", "9:ld120"])
    try:
        r = scan([link, "--units", "4-6", "--baud", "9600", "--framing", "8E1,8N2",
                  "--timeout-ms", "100"])
        check(r.returncode == 0, "scan exit %d: %s" % (r.returncode, r.stderr))
        bus = json.loads(r.stdout)["buses"][0]
        check((bus["parity"], bus["stop_bits"]) == ("N", 2), "8N2: %r" % bus)
        port = sim.endpoints[1][2]
        r = scan(["127.0.0.1:%s" % port, "--units", "8-10", "--timeout-ms", "100"])
        check(r.returncode == 0, "TCP scan exit %d: %s" % (r.returncode, r.stderr))
        cfg = json.loads(r.stdout)
        check(cfg["buses"][0]["type"] == "modbus-tcp" and cfg["buses"][0]["port"] == int(port),
              "a TCP bus: %r" % cfg["buses"])
        check([(s["unit_id"], s["profile"]) for s in cfg["sensors"]] == [(9, "ld120")],
              "unit 9: %r" % cfg["sensors"])
    finally:
        sim.stop()


def test_scan_profile_of_ones_own(tmp):
    """A profile from --profile-dir whose "name" differs from its file name (and is
    no valid id): the printed config names it by file, says where it is, and passes
    --check. Before, it named the inner name, which the daemon cannot look up."""
    own = os.path.join(tmp.path, "own")
    os.mkdir(own)
    aqt = json.load(open(os.path.join(SRC, "drivers", "profiles", "aqt530.json")))
    aqt["name"] = "Acme AQ 3"
    aqt["points"].append({"name": "nox", "table": "holding", "address": 40, "unit": "ppb"})
    with open(os.path.join(own, "acme-aq3.json"), "w") as f:
        json.dump(aqt, f)
    link = tmp.file("line4.pty")
    sim = Sim(tmp, ["--profile-dir", own, "--rtu", link, "--baud", "9600",
                    "--slave", "6:acme-aq3"])
    try:
        r = scan([link, "--units", "5-7", "--baud", "9600", "--framing", "8N1",
                  "--timeout-ms", "100", "--profile-dir", own])
        check(r.returncode == 0, "scan exit %d: %s" % (r.returncode, r.stderr))
        cfg = json.loads(r.stdout)
        check([(s["id"], s["profile"]) for s in cfg["sensors"]] == [("acme-aq3-6", "acme-aq3")],
              "named by its file: %r" % cfg["sensors"])
        check(cfg.get("profile_dirs") == [own], "its folder: %r" % cfg.get("profile_dirs"))
        c = run([CITYGATE, "--check", "-c", tmp.file("own.json", r.stdout)])
        check(c.returncode == 0, "passes --check: %s" % c.stdout)
        r = scan([link, "--baud", "230400"])
        check(r.returncode == 2, "a speed a bus cannot be set to: exit %d" % r.returncode)
    finally:
        sim.stop()


def test_scan_interrupted_and_nothing_found(tmp):
    """Ctrl-C ends a long scan within a probe and prints what it found so far; a
    line where nothing answers exits 1, a device that cannot be opened 2."""
    link = tmp.file("line3.pty")
    sim = Sim(tmp, ["--rtu", link, "--baud", "9600", "--slave", "2:aqt530"])
    try:
        p = subprocess.Popen([CITYGATE, "--scan", link, "--baud", "9600", "--framing", "8N1",
                              "--timeout-ms", "100"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # unit 2 found, the others still timing out
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - sent
        check(p.returncode == 1 and "interrupted" in err, "exit %d: %s" % (p.returncode, err))
        check(took < 2, "stopped within a probe or a profile fit: %.2f s" % took)
        check([s["unit_id"] for s in json.loads(out)["sensors"]] == [2],
              "what was found is printed: %s" % out)
        r = scan([link, "--units", "10-12", "--baud", "9600", "--framing", "8N1",
                  "--timeout-ms", "50"])
        check(r.returncode == 1 and r.stdout == "", "nothing found: exit %d" % r.returncode)
        r = scan([os.path.join(tmp.path, "no-such-tty")])
        check(r.returncode == 2, "a device that is not there: exit %d" % r.returncode)
        r = run([CITYGATE, "--units", "1-5", "-c", link])
        check(r.returncode == 2, "--units without --scan is a usage error")
    finally:
        sim.stop()


def test_scan_stops_at_the_lines_setting(tmp):
    """The devices of an RS-485 line share one setting: once units answered at
    19200 8E1 the scan says so and tries neither 19200 8O1 (where the pty, which
    cannot show parity, would answer too) nor 9600: the simulated line, which
    counts the bytes sent at another speed, got none. Before, it went on through
    every setting, some 16 minutes with the defaults. With --all-settings it does
    try them, and finds the unit at 8O1 as well, as on a line that does not check
    parity; the config is the same."""
    args = ["--units", "2-4", "--baud", "19200,9600", "--framing", "8E1,8O1",
            "--timeout-ms", "100"]
    runs = {}
    for name, extra in (("early", []), ("all", ["--all-settings"])):
        link = tmp.file("line-%s.pty" % name)
        sim = Sim(tmp, ["--rtu", link, "--baud", "19200", "--framing", "8E1",
                        "--slave", "3:aqt530", "--slave", "17:ld120"])
        try:
            r = scan([link] + args + extra)
        finally:
            sim.stop()
        check(r.returncode == 0, "%s: scan exit %d: %s" % (name, r.returncode, r.stderr))
        # The simulator's statistics at its stop; the count is left out when 0.
        log = open(sim.log.name).read()
        check("unit 3 (aqt530): " in log, "the simulator's statistics: %s" % log)
        other = re.search(r"(\d+) bytes at other line settings", log)
        runs[name] = (r, json.loads(r.stdout), int(other.group(1)) if other else 0)
    r, early, other = runs["early"]
    check("at 19200 8E1: unit ids 2-4" in r.stderr, "the first setting: %s" % r.stderr)
    check("answers at 19200 8E1, the line's setting: skipping the 3 settings left "
          "(--all-settings tries them too)" in r.stderr, "the skip is told: %s" % r.stderr)
    check("19200 8O1" not in r.stderr and "at 9600" not in r.stderr and other == 0,
          "no later setting was opened (%d bytes at 9600): %s" % (other, r.stderr))
    check([(s["unit_id"], s["profile"]) for s in early["sensors"]] == [(3, "aqt530")],
          "unit 3: %r" % early["sensors"])
    r, every, other = runs["all"]
    for setting in ("19200 8E1", "19200 8O1", "9600 8E1", "9600 8O1"):
        check("at %s: unit ids 2-4" % setting in r.stderr,
              "--all-settings tries %s: %s" % (setting, r.stderr))
    check("unit 3 answers at 8O1 too" in r.stderr and "skipping" not in r.stderr,
          "8O1 was probed, nothing skipped: %s" % r.stderr)
    check(other > 0, "9600 was probed: the simulator got bytes at it")
    for cfg in (early, every):  # each on its own simulated line
        del cfg["buses"][0]["device"]
    check(every == early, "the same config: %r" % every)


def test_scan_wording(tmp):
    """Each profile whose points all answer gets its score, the one chosen a line of
    its own; counts agree with their nouns ("1 device answered")."""
    link = tmp.file("line6.pty")
    sim = Sim(tmp, ["--rtu", link, "--baud", "9600", "--slave", "5:ld120", "--slave", "6:ld120"])
    try:
        r = scan([link, "--units", "4-5", "--baud", "9600", "--framing", "8N1",
                  "--timeout-ms", "100"])
        check(r.returncode == 0, "scan exit %d: %s" % (r.returncode, r.stderr))
        scores = [line for line in r.stderr.splitlines()
                  if line.startswith("scan:   unit 5: profile ")]
        check(scores and all(re.search(r": \d+ points? answers?, \d+ outside its ranges$", line)
                             for line in scores), "a score per candidate: %s" % r.stderr)
        check(" fits profile " not in r.stderr, "no candidate is said to fit: %s" % r.stderr)
        check(r.stderr.count("scan:   unit 5: chosen profile ld120\n") == 1,
              "the choice is named: %s" % r.stderr)
        check("scan: 1 device answered, 1 fits a shipped profile\n" in r.stderr,
              "singular: %s" % r.stderr)
        r = scan([link, "--units", "4-6", "--baud", "9600", "--framing", "8N1",
                  "--timeout-ms", "100"])
        check("scan: 2 devices answered, 2 fit a shipped profile\n" in r.stderr,
              "plural: %s" % r.stderr)
    finally:
        sim.stop()


if __name__ == "__main__":
    main([test_scan_finds_line_settings_and_profiles, test_scan_stop_bits_and_tcp,
          test_scan_profile_of_ones_own, test_scan_interrupted_and_nothing_found,
          test_scan_stops_at_the_lines_setting, test_scan_wording])
