"""Debian's Roundcube (packages roundcube, roundcube-sqlite3) pointed at a running ics-mail, for
test_webmail. Nothing global is touched: each run gets a private config directory
(ROUNDCUBE_CONFIG_DIR, which Debian's iniset.php reads; defaults.inc.php and mimetypes.php are
symlinked from /etc/roundcube), its own SQLite database, temp and log directories, and PHP's
built-in web server (`php -S`) on a free port of 127.0.0.1 with Debian's document root.

`roundcube_config()` makes config.inc.php from the ics-mail settings the same way docs/webmail.md
tells a Debian administrator to, and as nixos-module/default.nix does for NixOS."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DOCROOT = Path("/var/lib/roundcube/public_html")
ETC = Path("/etc/roundcube")
SQL = Path("/usr/share/roundcube/SQL/sqlite.initial.sql")
# Roundcube checks an attachment by 1.33 x its size (+10 KiB for the body) against
# max_message_size, but base64 in 76-character lines grows by 4/3 x 78/76 = 1.37. So Roundcube's
# limit is smtp.maxMessageSize x 1.33/1.37: the largest attachments it admits still fit the SMTP
# limit once encoded.
ROUNDCUBE_FACTOR = (133, 137)
# storage.defaultFolders when not set (docs/settings.md)
DEFAULT_FOLDERS = [{"name": "Drafts", "specialUse": "drafts"}, {"name": "Sent", "specialUse": "sent"},
                   {"name": "Trash", "specialUse": "trash"}, {"name": "Junk", "specialUse": "junk"}]


def php_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def max_message_size(smtp_max: int) -> int:
    """Roundcube's max_message_size (bytes) for ics-mail's smtp.maxMessageSize."""
    num, den = ROUNDCUBE_FACTOR
    return smtp_max * num // den


def special_folders(default_folders: list[dict]) -> dict[str, str]:
    """{Roundcube option: folder name} for storage.defaultFolders' drafts/sent/junk/trash; ""
    for a role no folder has (Roundcube then has no such folder)."""
    names = {f.get("specialUse"): f["name"] for f in default_folders}
    return {f"{role}_mbox": names.get(role, "") for role in ("drafts", "sent", "junk", "trash")}


def roundcube_config(settings: dict, imap_port: int, submission_port: int, *, workdir: Path,
                     ldap_port: int | None = None, base_dns: list[str] = (),
                     host: str = "127.0.0.1") -> str:
    """config.inc.php for ics-mail `settings` (the JSON config): IMAP and submission on `host`
    with the user's own login, the size limit, the special folders, short-name login and the
    LDAP book (anonymous, from this host) when `ldap_port` is given."""
    lines = [
        "<?php",
        "$config = [];",
        f"$config['db_dsnw'] = 'sqlite:///{workdir}/roundcube.db?mode=0640';",
        f"$config['imap_host'] = '{host}:{imap_port}';",
        f"$config['smtp_host'] = '{host}:{submission_port}';",
        "$config['smtp_user'] = '%u';",
        "$config['smtp_pass'] = '%p';",
        f"$config['des_key'] = {php_string(secrets.token_urlsafe(18)[:24])};",
        "$config['plugins'] = [];",
        "$config['skin'] = 'elastic';",
        "$config['language'] = 'en_US';",
        "$config['enable_spellcheck'] = false;",
        "$config['log_driver'] = 'file';",
        f"$config['log_dir'] = '{workdir}/logs/';",
        f"$config['temp_dir'] = '{workdir}/temp/';",
        # the SMTP and IMAP conversations in the run's log directory, for a failed test
        "$config['smtp_log'] = true;",
        "$config['imap_debug'] = true;",
        # the folders exist (ics-mail makes them with the mailbox): never create others
        "$config['create_default_folders'] = false;",
        # the folder list shows storage.defaultFolders' names, not Roundcube's translations
        "$config['show_real_foldernames'] = true;",
        f"$config['max_message_size'] = {max_message_size(settings['smtp']['maxMessageSize'])};",
    ]
    if settings.get("defaultAuthDomain"):
        lines.append(f"$config['username_domain'] = {php_string(settings['defaultAuthDomain'])};")
    folders = settings.get("storage", {}).get("defaultFolders") or DEFAULT_FOLDERS
    for option, name in special_folders(folders).items():
        # Roundcube names folders in IMAP's modified UTF-7, ics-mail's settings in UTF-8
        lines.append(f"$config['{option}'] = rcube_charset::convert({php_string(name)}, "
                     "'UTF-8', 'UTF7-IMAP');")
    if ldap_port is not None:
        # Roundcube 1.6 takes the port from 'hosts' only (a 'port' key is ignored: 389)
        names = []
        for i, dn in enumerate(base_dns):
            names.append(f"'icsmail{i}'")
            lines.append(f"""$config['ldap_public']['icsmail{i}'] = [
  'name' => {php_string('Address book (' + dn + ')')},
  'hosts' => ['{host}:{ldap_port}'], 'ldap_version' => 3,
  'user_specific' => false, 'base_dn' => {php_string(dn)}, 'scope' => 'sub',
  'search_fields' => ['mail', 'cn'], 'name_field' => 'cn', 'email_field' => 'mail',
  'fieldmap' => ['name' => 'cn', 'email' => 'mail:*'], 'readonly' => true,
  'fuzzy_search' => true,
];""")
        lines.append(f"$config['autocomplete_addressbooks'] = ['sql', {', '.join(names)}];")
    return "\n".join(lines) + "\n"


@dataclass
class Roundcube:
    workdir: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, config_php: str, upload_limit: int, timeout: float = 20.0) -> "Roundcube":
        conf = self.workdir / "config"
        for sub in (conf, self.workdir / "logs", self.workdir / "temp"):
            sub.mkdir(parents=True, exist_ok=True)
        for name in ("defaults.inc.php", "mimetypes.php"):
            link = conf / name
            if not link.exists():
                link.symlink_to(ETC / name)
        (conf / "config.inc.php").write_text(config_php)
        db = sqlite3.connect(self.workdir / "roundcube.db")
        db.executescript(SQL.read_text())
        db.close()
        env = dict(os.environ, ROUNDCUBE_CONFIG_DIR=str(conf),
                   # Roundcube's page loads several requests at once (the list, the preview,
                   # the keep-alive): more than one worker so none waits for the others
                   PHP_CLI_SERVER_WORKERS="4")
        # PHP's own upload limits are the SMTP limit: Roundcube's per-file limit
        # (max_message_size / 1.33) stays below them, so Roundcube's check is the one that acts.
        self.log = open(self.workdir / "php-server.log", "wb")
        self.proc = subprocess.Popen(
            ["php", "-d", f"upload_max_filesize={upload_limit}",
             "-d", f"post_max_size={upload_limit}", "-d", "memory_limit=256M",
             # PHP's notices (Net_LDAP3 has deprecations under PHP 8.2) into the log, never
             # into Roundcube's JSON answers
             "-d", "display_errors=0", "-d", "log_errors=1",
             "-d", f"error_log={self.workdir}/logs/php-errors.log",
             "-S", f"127.0.0.1:{self.port}", "-t", str(DOCROOT)],
            cwd=DOCROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT,
            # its own process group: the workers are stopped with it (stop())
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"php -S exited with {self.proc.returncode}: {self.server_log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as reply:
                    page = reply.read().decode("utf-8", "replace")
                if 'name="_user"' in page:
                    return self
                raise RuntimeError(f"no Roundcube login form at {self.url}: {page[:2000]}")
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"php -S does not answer: {self.server_log()}") from None
                time.sleep(0.2)

    def server_log(self) -> str:
        path = self.workdir / "php-server.log"
        return path.read_text(errors="replace")[-10000:] if path.exists() else ""

    def roundcube_log(self, name: str = "errors.log") -> str:
        path = self.workdir / "logs" / name
        return path.read_text(errors="replace")[-10000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # php -S and its workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
