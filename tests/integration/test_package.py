"""The Debian package: built by scripts/package.sh, its contents, dependencies
and maintainer scripts, and the extracted citygate checking the shipped config.

CG_PACKAGE_DEB=/path/to/citygate_*.deb reuses a package instead of building one.
"""
import json
import os
import re
import subprocess

from harness import SRC, check, main, run

PROFILE_DIR = "/usr/share/citygate/profiles"
DEPENDS = ("libpaho-mqtt1.3", "libsqlite3-0", "libcjson1", "libmodbus5")


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        return re.search(r"project\(citygate VERSION ([0-9.]+)", f.read()).group(1)


def build_deb(tmp):
    """The .deb named by CG_PACKAGE_DEB, or one built into tmp."""
    deb = os.environ.get("CG_PACKAGE_DEB")
    if deb:
        return deb
    r = subprocess.run(["bash", os.path.join(SRC, "scripts", "package.sh"),
                        os.path.join(tmp.path, "build-pkg")],
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, "package.sh: exit %d:\n%s%s" % (
        r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    deb = r.stdout.strip().splitlines()[-1]
    check(deb.endswith(".deb") and os.path.isfile(deb), "package.sh printed %r" % deb)
    return deb


def source_files(folder):
    return sorted(n for n in os.listdir(os.path.join(SRC, folder)) if n.endswith(".json"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_package(tmp):
    deb = build_deb(tmp)

    # Contents: the binaries, every profile and schema, the unit, the user,
    # the config and the operations guide.
    r = run(["dpkg-deb", "--contents", deb])
    check(r.returncode == 0, "dpkg-deb --contents: %s" % r.stderr)
    paths = {line.split()[-1].lstrip(".") for line in r.stdout.splitlines()}
    want = ["/usr/bin/citygate", "/usr/bin/citygate-sim",
            "/usr/lib/systemd/system/citygate.service", "/usr/lib/sysusers.d/citygate.conf",
            "/etc/citygate/citygate.json", "/usr/share/doc/citygate/operations.md"]
    want += [PROFILE_DIR + "/" + n for n in source_files("drivers/profiles")]
    want += ["/usr/share/citygate/schemas/" + n for n in source_files("schemas")]
    missing = [p for p in want if p not in paths]
    check(not missing, "missing from the package: %s" % missing)
    # Only the shipped profiles, each a device's published map: an example of the
    # format (examples/profiles/) is not one.
    packaged = sorted(p[len(PROFILE_DIR) + 1:] for p in paths
                      if p.startswith(PROFILE_DIR + "/") and p != PROFILE_DIR + "/")
    check(packaged == source_files("drivers/profiles"),
          "packaged profiles %r, drivers/profiles holds %r"
          % (packaged, source_files("drivers/profiles")))
    check(not any(p.startswith("/usr/local") or "/work/" in p for p in paths),
          "stray paths: %s" % sorted(p for p in paths if "/local" in p or "/work/" in p))

    # Control: name, version, dependencies, the conffile and the scripts.
    r = run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends"])
    fields = dict(l.split(": ", 1) for l in r.stdout.splitlines() if ": " in l)
    check(fields.get("Package") == "citygate", "Package: %r" % fields)
    check(fields.get("Version") == project_version(), "Version: %r" % fields.get("Version"))
    depends = [d.strip().split()[0] for d in fields.get("Depends", "").split(",")]
    for lib in DEPENDS:
        check(lib in depends, "Depends lacks %s: %r" % (lib, fields.get("Depends")))
    r = run(["dpkg-deb", "-I", deb, "conffiles"])
    check(r.stdout.split() == ["/etc/citygate/citygate.json"], "conffiles: %r" % r.stdout)
    ctl = os.path.join(tmp.path, "control")
    check(run(["dpkg-deb", "-e", deb, ctl]).returncode == 0, "dpkg-deb -e")
    for script in ("postinst", "prerm", "postrm"):
        p = os.path.join(ctl, script)
        check(os.access(p, os.X_OK), "%s is not executable" % script)
        r = run(["sh", "-n", p])
        check(r.returncode == 0, "%s: %s" % (script, r.stderr))

    # Extracted into a scratch root: the files are the repository's.
    root = os.path.join(tmp.path, "root")
    check(run(["dpkg-deb", "-x", deb, root]).returncode == 0, "dpkg-deb -x")
    for packaged, source in (("usr/lib/systemd/system/citygate.service", "systemd/citygate.service"),
                             ("usr/lib/sysusers.d/citygate.conf", "systemd/citygate.sysusers"),
                             ("etc/citygate/citygate.json", "etc/citygate.json")):
        check(read(os.path.join(root, packaged)) == read(os.path.join(SRC, source)),
              "%s differs from %s" % (packaged, source))

    citygate = os.path.join(root, "usr", "bin", "citygate")
    r = run([citygate, "--version"])
    check(r.stdout.strip() == "citygate " + project_version(), "--version: %r" % r.stdout)
    # The profile folder compiled in is where the package puts the profiles.
    r = run(["strings", citygate])
    check(PROFILE_DIR in r.stdout.splitlines(), "%s not in the binary's strings" % PROFILE_DIR)

    # --check on the shipped config, its profiles taken from the scratch root:
    # once through profile_dirs, once naming the packaged file itself.
    with open(os.path.join(root, "etc", "citygate", "citygate.json")) as f:
        cfg = json.load(f)
    check(cfg["store"]["path"] == "/var/lib/citygate/outbox.db", "store %r" % cfg["store"])
    scratch_profiles = root + PROFILE_DIR
    cfg["profile_dirs"] = [scratch_profiles]
    path = tmp.file("installed.json", json.dumps(cfg))
    r = run([citygate, "--check", "-c", path])
    check(r.returncode == 0 and r.stdout == "", "--check: exit %d: %s%s" % (
        r.returncode, r.stdout, r.stderr))
    del cfg["profile_dirs"]
    for sensor in cfg["sensors"]:
        if "profile" in sensor:
            sensor["profile"] = os.path.join(scratch_profiles, sensor["profile"] + ".json")
    path = tmp.file("installed-paths.json", json.dumps(cfg))
    r = run([citygate, "--check", "-c", path])
    check(r.returncode == 0 and r.stdout == "", "--check with packaged profile paths: exit %d: %s%s"
          % (r.returncode, r.stdout, r.stderr))

    # The packaged unit, pointed at the scratch root's binary, verifies.
    with open(os.path.join(root, "usr/lib/systemd/system/citygate.service")) as f:
        text = f.read().replace("/usr/bin/citygate", citygate)
    unit = os.path.join(tmp.path, "unit", "citygate.service")
    os.makedirs(os.path.dirname(unit))
    with open(unit, "w") as f:
        f.write(text)
    r = run(["systemd-analyze", "verify", unit], cwd=tmp.path)
    check(r.returncode == 0 and not r.stderr.strip(), "verify: %s%s" % (r.stdout, r.stderr))


if __name__ == "__main__":
    main([test_package])
