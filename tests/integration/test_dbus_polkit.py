"""polkit in front of the admin service's changing calls (issue 15, docs/dbus.md "Who may
call"): a real polkitd (Debian's, switching to its own user) on the private system-like bus, with the
project's action file (units/polkit/org.icsmail.Mail1.policy) and, in one case, its rules file
(units/polkit/50-org.icsmail.Mail1.rules). The bus policy lets `nobody` call (the tests' admin
group is nogroup, see dbushelpers); polkit then decides, and root is authorized without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dbushelpers import ADMIN_GROUP, REPO, SETTINGS, Admind, Bus, data, tools_missing

POLKITD = Path("/usr/lib/polkit-1/polkitd")
POLKIT_BUS_POLICY = Path("/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf")
ACTION = REPO / "units" / "polkit" / "org.icsmail.Mail1.policy"
RULES = REPO / "units" / "polkit" / "50-org.icsmail.Mail1.rules"
# polkitd reads its actions and rules from these fixed places only.
INSTALLED_ACTION = Path("/usr/share/polkit-1/actions") / ACTION.name
INSTALLED_RULES = Path("/etc/polkit-1/rules.d") / RULES.name

pytestmark = pytest.mark.skipif(
    tools_missing() or not POLKITD.exists() or os.geteuid() != 0,
    reason="dbus-daemon, busctl, runuser, polkitd and root are needed")


class Polkitd:
    def __init__(self, bus: Bus, log: Path):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        self.log = log
        with open(log, "wb") as err:
            # Started as root, polkitd switches to its own user itself.
            self.proc = subprocess.Popen([str(POLKITD)],
                                         env=env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        deadline = time.monotonic() + 20
        while bus.busctl("status", "org.freedesktop.PolicyKit1", check=False).returncode != 0:
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"polkitd did not take its name: {log.read_text()}"
            time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def polkit_bus():
    """A bus whose policy also lets polkitd own its name; the action file installed."""
    bus = Bus(extra_policies=[POLKIT_BUS_POLICY])
    INSTALLED_ACTION.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ACTION, INSTALLED_ACTION)
    yield bus
    INSTALLED_ACTION.unlink(missing_ok=True)
    INSTALLED_RULES.unlink(missing_ok=True)
    bus.close()


def set_helo(bus: Bus, value: str, user: str | None):
    return bus.call(SETTINGS, "Set", "ss", "heloName", value, user=user, check=False)


def test_polkit_decides_for_admin_group_members_and_root_needs_no_rule(polkit_bus, make_server,
                                                                       bin_path):
    bus = polkit_bus
    server = make_server(mode="serve")
    polkitd = Polkitd(bus, server.tmp / "polkitd.log")
    admind = Admind(bus, bin_path, server.config_path, server.tmp / "admind.stderr")
    try:
        # No rule for the group: polkit's default (auth_admin) refuses a caller without an agent.
        refused = set_helo(bus, "refused.example.test", user="nobody")
        assert refused.returncode != 0
        assert "org.icsmail.Mail1.manage" in refused.stderr, refused.stderr
        assert "authentication" in refused.stderr, refused.stderr
        # Reading is the bus policy's matter alone.
        assert data(bus.call(SETTINGS, "Get", "s", "heloName", user="nobody"))[1] == "file"
        # Root is authorized without asking polkit.
        assert set_helo(bus, "root.example.test", user=None).returncode == 0
    finally:
        polkitd.stop()

    # The project's rules file (its group the tests' admin group) lets the members manage.
    rules = RULES.read_text().replace('"icsmail-admin"', f'"{ADMIN_GROUP}"')
    INSTALLED_RULES.write_text(rules)
    polkitd = Polkitd(bus, server.tmp / "polkitd-rules.log")
    try:
        allowed = set_helo(bus, "member.example.test", user="nobody")
        assert allowed.returncode == 0, allowed.stderr
        assert data(bus.call(SETTINGS, "Get", "s", "heloName")) == ['"member.example.test"',
                                                                    "override"]
    finally:
        polkitd.stop()

    # Without polkit on the bus, the bus policy alone decides (as in test_dbus_admin).
    INSTALLED_RULES.unlink()
    assert set_helo(bus, "nopolkit.example.test", user="nobody").returncode == 0
    admind.stop()
