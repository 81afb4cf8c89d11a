"""A private system-like D-Bus for the admin tests: a real dbus-daemon with Debian's
system-bus default policy and the project's own policy file (units/dbus/org.icsmail.Mail1.conf),
`icsmail admind` on it, and busctl to drive it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BUS_NAME = "org.icsmail.Mail1"
OBJECT = "/org/icsmail/Mail1"
SETTINGS = "org.icsmail.Mail1.Settings"
LISTS = "org.icsmail.Mail1.Lists"
REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "units" / "dbus" / "org.icsmail.Mail1.conf"
# In the tests, the admin group is nogroup (nobody's group), so that `nobody` is an admin and
# `daemon` is not, without making a group on the machine.
ADMIN_GROUP = "nogroup"

TOOLS = ("dbus-daemon", "busctl", "gdbus", "runuser")


def tools_missing() -> bool:
    return not all(shutil.which(tool) for tool in TOOLS)


BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- the default policy of Debian's /usr/share/dbus-1/system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>{policy_dir}</includedir>
</busconfig>
"""


class Bus:
    """A dbus-daemon on a socket every user can reach (not under pytest's 0700 tmp)."""

    def __init__(self, extra_policies: list[Path] = ()):
        self.dir = Path(tempfile.mkdtemp(prefix="ics-bus-", dir="/tmp"))
        self.dir.chmod(0o755)
        policy_dir = self.dir / "system.d"
        policy_dir.mkdir()
        for extra in extra_policies:
            shutil.copy(extra, policy_dir / extra.name)
        policy = POLICY.read_text().replace('group="icsmail-admin"', f'group="{ADMIN_GROUP}"')
        (policy_dir / POLICY.name).write_text(policy)
        self.socket = self.dir / "bus.sock"
        config = self.dir / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=self.socket, policy_dir=policy_dir))
        self.address = f"unix:path={self.socket}"
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", str(config), "--nofork"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            assert time.monotonic() < deadline, "dbus-daemon did not make its socket"
            time.sleep(0.05)

    def busctl(self, *args: str, user: str | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
        command = ["busctl", f"--address={self.address}", *args]
        if user:
            command = ["runuser", "-u", user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if check:
            assert result.returncode == 0, f"{command}: {result.stderr}"
        return result

    def call(self, interface: str, method: str, signature: str = "", *args: str,
             user: str | None = None, check: bool = True,
             path: str = OBJECT) -> subprocess.CompletedProcess:
        sig = [signature] if signature else []
        return self.busctl("--json=short", "call", BUS_NAME, path, interface, method,
                           *sig, *args, user=user, check=check)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def data(result: subprocess.CompletedProcess):
    """The reply's values (busctl --json=short)."""
    return json.loads(result.stdout)["data"]


class Admind:
    def __init__(self, bus: Bus, bin_path: str, config_path: Path, log: Path):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([bin_path, "admind", "--config", str(config_path)],
                                         env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 15
        while bus.busctl("status", BUS_NAME, check=False).returncode != 0:
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"admind did not take its name: {log.read_text()}"
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(10) == 0, self.log.read_text()


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
