"""The systemd unit and sysusers entry: systemd-analyze verify and security, sysusers."""
import json
import os
import re

from harness import CITYGATE, SRC, check, main, run

UNIT = os.path.join(SRC, "systemd", "citygate.service")
SYSUSERS = os.path.join(SRC, "systemd", "citygate.sysusers")
MAX_EXPOSURE = 2.0


def unit_settings(path):
    """The unit's settings as {key: [values]}, comments and sections left out."""
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_has_the_contract(tmp):
    s = unit_settings(UNIT)
    expect = {
        "Type": "notify",
        "ExecStartPre": "/usr/bin/citygate --check -c /etc/citygate/citygate.json",
        "ExecStart": "/usr/bin/citygate -c /etc/citygate/citygate.json",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "TimeoutStopSec": "15",
        "User": "citygate",
        "SupplementaryGroups": "dialout",
        "StateDirectory": "citygate",
        "DevicePolicy": "closed",
        "LoadCredential": "mqtt.pass:/etc/citygate/mqtt.pass",
        "ProtectSystem": "strict",
        "CapabilityBoundingSet": "",
    }
    for key, value in expect.items():
        check(s.get(key) == [value], "%s: want %r, have %r" % (key, value, s.get(key)))
    allowed = s.get("DeviceAllow", [])
    for cls in ("char-ttyS", "char-ttyUSB"):
        check("%s rw" % cls in allowed, "DeviceAllow=%s rw missing: %r" % (cls, allowed))
    check("PrivateDevices" not in s, "PrivateDevices= would hide the serial ports")
    # The deny list takes @resources away; sched_setscheduler, for Paho's send
    # thread, is given back after it (a later allow line adds to the set).
    filters = s.get("SystemCallFilter", [])
    check(filters[-1:] == ["sched_setscheduler"] and "~@privileged @resources" in filters,
          "SystemCallFilter= allows sched_setscheduler after the deny list: %r" % filters)


def test_verify_clean(tmp):
    # verify insists that the binaries exist: point the unit at the build's.
    with open(UNIT) as f:
        text = f.read().replace("/usr/bin/citygate", os.path.abspath(CITYGATE))
    path = tmp.file("citygate.service", text)
    r = run(["systemd-analyze", "verify", path], cwd=tmp.path)
    check(r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "",
          "verify: exit %d:\n%s%s" % (r.returncode, r.stdout, r.stderr))


def test_security_score(tmp):
    r = run(["systemd-analyze", "security", "--offline=true", "--no-pager", UNIT])
    check(r.returncode == 0, "security: exit %d: %s" % (r.returncode, r.stderr))
    # Settings that systemd does not understand would be ignored, and scored.
    check("citygate.service:" not in r.stderr, "unit warnings:\n%s" % r.stderr)
    m = re.search(r"Overall exposure level for citygate\.service: ([0-9.]+)", r.stdout)
    check(m, "no overall exposure level in:\n%s" % r.stdout[-2000:])
    score = float(m.group(1))
    check(score <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (
        score, MAX_EXPOSURE, "\n".join(l for l in r.stdout.splitlines() if "\u2717" in l)))
    print("exposure level %.1f" % score)


def test_sysusers(tmp):
    r = run(["systemd-sysusers", "--dry-run", SYSUSERS])
    check(r.returncode == 0, "sysusers --dry-run: exit %d: %s" % (r.returncode, r.stderr))
    root = os.path.join(tmp.path, "root")
    os.makedirs(os.path.join(root, "etc"))
    r = run(["systemd-sysusers", "--root", root, SYSUSERS])
    check(r.returncode == 0, "sysusers --root: exit %d: %s" % (r.returncode, r.stderr))
    with open(os.path.join(root, "etc", "passwd")) as f:
        users = {l.split(":")[0]: l.rstrip("\n").split(":") for l in f}
    with open(os.path.join(root, "etc", "group")) as f:
        groups = {l.split(":")[0]: l.rstrip("\n").split(":") for l in f}
    user = users.get("citygate")
    check(user is not None, "no citygate user: %r" % users)
    check(user[5] == "/var/lib/citygate", "home %r" % user[5])
    check(user[6].endswith("nologin"), "shell %r" % user[6])
    check(int(user[2]) < 1000, "a system uid, got %s" % user[2])
    check("citygate" in groups.get("dialout", ["", "", "", ""])[3].split(","),
          "citygate in dialout: %r" % groups.get("dialout"))


def test_credential_password_file(tmp):
    # systemd writes a credential read-only for the service's user alone
    # (mode 0400); a config naming such a file, as it names
    # /run/credentials/citygate.service/mqtt.pass, must pass --check.
    creds = os.path.join(tmp.path, "credentials")
    os.makedirs(creds)
    secret = os.path.join(creds, "mqtt.pass")
    with open(secret, "w") as f:
        f.write("s3cret\n")
    os.chmod(secret, 0o400)
    with open(os.path.join(SRC, "etc", "citygate.json")) as f:
        cfg = json.load(f)
    cfg["mqtt"].update({"username": "gw", "password_file": secret})
    cfg["store"]["path"] = os.path.join(tmp.path, "outbox.db")
    path = tmp.file("cred.json", json.dumps(cfg))
    r = run([CITYGATE, "--check", "-c", path])
    check(r.returncode == 0 and r.stdout == "", "--check: exit %d: %s%s" % (
        r.returncode, r.stdout, r.stderr))


if __name__ == "__main__":
    main([test_unit_has_the_contract, test_verify_clean, test_security_score, test_sysusers,
          test_credential_password_file])
