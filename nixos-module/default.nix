# NixOS module: services.icsMail (docs/nixos.md).
#
# Every setting of docs/settings.md is an option here, at the same path as its JSON key; the
# module writes them to /etc/icsmail/config.json (builtins.toJSON), installs the units of
# units/ (systemd.packages) and sets their listen addresses, ports, timer and firewall from the
# options. The Nix-only options are `enable`, `package`, `openFirewall` and `webmail.*`.
#
# One validator (docs/nixos.md, "The build-time check"): the generated JSON is checked when the
# system is built, by the package's own `icsmail check-config --static`, and /etc/icsmail/
# config.json is the output of that check. The option types are the JSON's shapes plus the
# bounds the module's own arithmetic needs (ports, queue.interval); the assertions are only
# what Nix alone can know (secrets in the store, the webmail's loopback connections).
#
# Defaults (docs/nixos.md, "Defaults"): the program owns its defaults (src/config/model.rs). An
# option the module does not act on defaults to null, which leaves its key out of the JSON so
# the program's default applies. The options the module acts on itself (ports, interfaces,
# the listeners' enable switches, tls.mode, queue.interval, stateDir, storage.path,
# smtp.maxMessageSize, addressBook.enable for the webmail) carry their real default, equal to
# the program's, and are always written; so do the other on/off switches (false, as in the
# program) and the lists. `smtp.submissionPort` is written even when null: there null means
# "submission disabled".
{ config, lib, pkgs, ... }:

let
  inherit (lib)
    mkOption mkEnableOption mkIf mkMerge mkDefault types literalExpression optionalString
    concatStringsSep concatMap filter filterAttrs mapAttrs nameValuePair attrNames head tail
    unique any hasPrefix elem listToAttrs genList groupBy;

  cfg = config.services.icsMail;

  # ------------------------------------------------------------------------------ types
  # The module builds socket units and the firewall from the ports, and the queue timer from
  # queue.interval (a period of 0 minutes would not evaluate): those bounds are the module's
  # own. Every other value is checked by the program (the build-time check).
  portType = types.ints.between 1 65535;
  intervalType = types.ints.between 1 4294967295;
  u32Type = types.ints.u32;
  # Paths are strings, never Nix path values: a path literal would copy the file (a secret,
  # say) into the world-readable Nix store.
  absPath = types.strMatching "/.*" // {
    description = "absolute path (a string: the file stays out of the Nix store)";
  };
  clamdSocket = types.strMatching "(/|tcp://).*" // {
    description = "absolute path of a Unix socket, or tcp://host:port";
  };
  interfaceType = types.strMatching "[A-Za-z0-9_.@:%-]+" // {
    description = "IP address or network interface name";
  };
  specialUses = [ "all" "archive" "drafts" "flagged" "junk" "sent" "trash" ];

  opt = type: default: description: mkOption { inherit type default description; };
  # an option with an example (lists, DNS names, URLs, base DNs: the forms are not obvious)
  withExample = example: option: option // { inherit example; };
  nullOpt = type: description: mkOption { type = types.nullOr type; default = null; inherit description; };
  # A setting whose default the program owns (src/config/model.rs): null leaves the key out of
  # the JSON, and the program uses its default (quoted in the description, docs/settings.md).
  progOpt = type: programDefault: description: mkOption {
    type = types.nullOr type;
    default = null;
    description = description + "\n\nnull (the default): the program's own default, `${programDefault}`.";
  };

  certificateType = types.submodule {
    options = {
      certFile = mkOption {
        type = absPath;
        description = "PEM certificate chain.";
      };
      keyFile = mkOption {
        type = absPath;
        description = "PEM private key. Must be readable by the `icsmail` user (e.g. for ACME certificates add `icsmail` to the `acme` group).";
      };
    };
  };

  accountType = types.submodule {
    options = {
      hashedPassword = nullOpt types.str ''
        Password hash: argon2id (`$argon2id$…`, from `icsmail hash-password`) or SHA-512-crypt
        (`$6$…`). It ends up in the world-readable Nix store: prefer `hashedPasswordFile`.
        Set exactly one of `hashedPassword` and `hashedPasswordFile`.
      '';
      hashedPasswordFile = nullOpt absPath ''
        File holding such a hash, readable by the `icsmail` user. Read at start.
      '';
      aliases = opt (types.listOf types.str) [ ] ''
        Further addresses delivered to this mailbox; their domains must be in `domains`. The
        mailbox owning `postmaster@<domain>` also receives `RCPT TO:<postmaster>`.
      '';
      displayName = nullOpt types.str "The person's name (address book).";
      quota = nullOpt types.ints.unsigned "Mailbox size limit in bytes (positive); null = unlimited. A delivery that would cross it gets `452 4.2.2` (the sender retries), IMAP APPEND and COPY `NO [OVERQUOTA]`; the use is kept in the mailbox's Maildir++ `maildirsize` file (docs/storage.md, \"Quotas\").";
    };
  };

  folderType = types.submodule {
    options = {
      name = mkOption {
        type = types.str;
        description = "Folder name, UTF-8; `.` separates hierarchy levels.";
      };
      specialUse = nullOpt (types.enum specialUses) "The folder's RFC 6154 role.";
    };
  };

  # ------------------------------------------------------------------------------ the JSON
  stripNulls = v:
    if builtins.isAttrs v then mapAttrs (_: stripNulls) (filterAttrs (_: x: x != null) v)
    else if builtins.isList v then map stripNulls v
    else v;
  certJson = c: if c == null then null else { inherit (c) certFile keyFile; };

  settings = stripNulls {
    inherit (cfg) domains heloName defaultAuthDomain stateDir recodeSubjectUtf8;
    accounts = mapAttrs (_: a: {
      inherit (a) hashedPassword hashedPasswordFile aliases displayName quota;
    }) cfg.accounts;
    smtp = {
      inherit (cfg.smtp) port interfaces maxMessageSize smtputf8;
      certificate = certJson cfg.smtp.certificate;
      smtps = { inherit (cfg.smtp.smtps) enable port; };
      limits = {
        inherit (cfg.smtp.limits) maxRecipients maxErrors commandTimeout dataTimeout
          connectionsPerIp maxConnections;
      };
    };
    access = {
      inherit (cfg.access) interfaces;
      certificate = certJson cfg.access.certificate;
      implicitTls = { inherit (cfg.access.implicitTls) enable; };
    };
    imap = { inherit (cfg.imap) port imapsPort; };
    pop3 = { inherit (cfg.pop3) port pop3sPort; };
    tls = { inherit (cfg.tls) mode dhKeyLength; };
    rateLimit = { inherit (cfg.rateLimit) enable messagesPerMinute exemptWhitelist; };
    queue = { inherit (cfg.queue) interval delayMin delayMax maxLifetime; };
    relay = {
      inherit (cfg.relay) host port smtps;
      auth = { inherit (cfg.relay.auth) enable user passwordFile; };
      changeSender = { inherit (cfg.relay.changeSender) enable address; };
    };
    lists = { inherit (cfg.lists) whitelist blacklist; };
    storage = {
      inherit (cfg.storage) path;
      defaultFolders = if cfg.storage.defaultFolders == null then null
        else map (f: { inherit (f) name specialUse; }) cfg.storage.defaultFolders;
    };
    antivirus = {
      clamav = { inherit (cfg.antivirus.clamav) enable socket; };
      kaspersky = { inherit (cfg.antivirus.kaspersky) enable icapUrl; };
    };
    dkim = { inherit (cfg.dkim) verify sign selector keyDirectory; };
    dlp = { inherit (cfg.dlp) enable icapUrl; };
    spam = {
      inherit (cfg.spam) dnsbl dnsblUnreachable requireReverseDns;
      greylist = { inherit (cfg.spam.greylist) enable ignoreSeconds awaitHours keepDays; };
    };
    addressBook = { inherit (cfg.addressBook) enable port ldapsPort baseDn publishToClients; };
    dns = { inherit (cfg.dns) nameservers; };
  };
  # null is meaningful here: submission disabled (the program's default is 587)
  configJson = settings // { smtp = settings.smtp // { inherit (cfg.smtp) submissionPort; }; };

  configPath = "/etc/icsmail/config.json";
  icsmail = "${cfg.package}/bin/icsmail";

  # ------------------------------------------------------------------------------ build-time check
  # Rust is the one validator: the JSON is checked by this package's own check-config when the
  # system is built (as NixOS does for nginx and sshd configurations), and /etc links to the
  # checked copy, so a bad value fails nixos-rebuild with the program's line naming the key.
  # --static: the build sandbox has no secret files, certificates or the host's name; the
  # daemons' full check at start reads those. A cross build cannot run the host's binary.
  configText = builtins.toJSON configJson;
  uncheckedConfig = pkgs.writeText "icsmail-config-unchecked.json" configText;
  canRunPackage = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
  checkCommand = optionalString canRunPackage ''
    ${icsmail} check-config --static --config ${uncheckedConfig}
  '' + ''
    cp ${uncheckedConfig} "$out"
  '';
  checkedConfig = pkgs.runCommand "icsmail-config.json" { } checkCommand;

  # ------------------------------------------------------------------------------ listeners
  isIPv4 = s: builtins.match "[0-9]{1,3}(\\.[0-9]{1,3}){3}" s != null;
  isIPv6 = s: builtins.match "[0-9a-fA-F.]*:[0-9a-fA-F.]*:[0-9a-fA-F:.]*(%[A-Za-z0-9_.-]+)?" s != null;
  isAddress = s: isIPv4 s || isIPv6 s;
  isLoopback = s: hasPrefix "127." s || s == "::1";
  isLoopbackName = s: s == "lo";
  listenAddress = addr: port: if isIPv6 addr then "[${addr}]:${toString port}" else "${addr}:${toString port}";
  # a unit-name-safe form of an interface name (`@` is the template separator)
  escapeName = builtins.replaceStrings [ "@" ":" ] [ "\\x40" "\\x3a" ];

  # The listening sockets of this configuration: name (= FileDescriptorName and unit suffix),
  # daemon, port, interfaces, and whether the configuration enables it.
  sockets = [
    { name = "smtp"; daemon = "smtpd"; port = cfg.smtp.port; interfaces = cfg.smtp.interfaces; enabled = true; }
    { name = "submission"; daemon = "smtpd"; port = cfg.smtp.submissionPort; interfaces = cfg.smtp.interfaces; enabled = cfg.smtp.submissionPort != null; }
    { name = "smtps"; daemon = "smtpd"; port = cfg.smtp.smtps.port; interfaces = cfg.smtp.interfaces; enabled = cfg.smtp.smtps.enable; }
    { name = "pop3"; daemon = "pop3d"; port = cfg.pop3.port; interfaces = cfg.access.interfaces; enabled = true; }
    { name = "pop3s"; daemon = "pop3d"; port = cfg.pop3.pop3sPort; interfaces = cfg.access.interfaces; enabled = cfg.access.implicitTls.enable; }
    { name = "imap"; daemon = "imapd"; port = cfg.imap.port; interfaces = cfg.access.interfaces; enabled = true; }
    { name = "imaps"; daemon = "imapd"; port = cfg.imap.imapsPort; interfaces = cfg.access.interfaces; enabled = cfg.access.implicitTls.enable; }
    { name = "ldap"; daemon = "ldapd"; port = cfg.addressBook.port; interfaces = cfg.access.interfaces; enabled = cfg.addressBook.enable; }
    { name = "ldaps"; daemon = "ldapd"; port = cfg.addressBook.ldapsPort; interfaces = cfg.access.interfaces; enabled = cfg.addressBook.enable && cfg.access.implicitTls.enable; }
  ];
  enabledSockets = filter (s: s.enabled) sockets;

  # One socket unit per group of listen entries: the addresses together in the unit of units/
  # (icsmail-<name>.socket), each interface name in its own unit (BindToDevice= takes one
  # device): the first one in the units/ unit when no address is given, the others in
  # icsmail-<name>-<interface>.socket. All carry the same FileDescriptorName=, and the daemon
  # takes every socket of that name.
  socketUnits = s:
    let
      addresses = filter isAddress s.interfaces;
      names = filter (i: !isAddress i) s.interfaces;
      base = "icsmail-${s.name}";
      common = {
        FileDescriptorName = s.name;
        Service = "icsmail-${s.daemon}.service";
        Accept = false;
        NoDelay = true;
      };
      nameUnit = unit: ifname: {
        inherit unit;
        listen = [ (toString s.port) ];
        config = common // { BindToDevice = ifname; };
      };
    in
    if s.interfaces == [ ] then
      [ { unit = base; listen = [ (toString s.port) ]; config = { }; } ]
    else if addresses != [ ] then
      [ {
          unit = base;
          listen = map (a: listenAddress a s.port) addresses;
          # the addresses may not be configured yet when sockets.target starts; with names
          # as well, a device-bound wildcard overlaps the addresses: Linux only lets both
          # listen with SO_REUSEPORT (every one of them leads to the same daemon)
          config = { FreeBind = true; } // lib.optionalAttrs (names != [ ]) { ReusePort = true; };
        } ]
      ++ map (n: lib.recursiveUpdate (nameUnit "${base}-${escapeName n}" n) { config.ReusePort = true; }) names
    else
      [ (nameUnit base (head names) // { config = { BindToDevice = head names; }; }) ]
      ++ map (n: nameUnit "${base}-${escapeName n}" n) (tail names);

  allSocketUnits = concatMap (s: map (u: u // { sock = s; }) (socketUnits s)) enabledSockets;
  packagedSocketNames = map (s: "icsmail-${s.name}") sockets;

  # ------------------------------------------------------------------------------ queue timer
  # queue.interval minutes as a timer: wall-clock OnCalendar= (so Persistent=true catches up a
  # run missed while the machine was off) whenever the period fits in a day, else a monotonic
  # OnUnitActiveSec= period.
  timerFor = n:
    let
      times = genList (k: k * n) ((1439 / n) + 1);
      byMinute = groupBy (t: toString (lib.mod t 60)) times;
      pad = m: if m < 10 then "0${toString m}" else toString m;
    in
    if lib.mod 60 n == 0 then { OnCalendar = [ "" "*:0/${toString n}" ]; }
    else if n <= 1440 then {
      OnCalendar = [ "" ] ++ map (m: "*-*-* ${concatStringsSep "," (map (t: toString (t / 60)) byMinute.${m})}:${pad (lib.toInt m)}:00")
        (lib.sort (a: b: lib.toInt a < lib.toInt b) (attrNames byMinute));
    }
    else {
      OnCalendar = [ "" ];
      OnBootSec = "${toString n}min";
      OnUnitActiveSec = "${toString n}min";
    };

  # ------------------------------------------------------------------------------ firewall
  smtpPorts = map (s: s.port) (filter (s: s.daemon == "smtpd") enabledSockets);
  accessPorts = map (s: s.port) (filter (s: s.daemon != "smtpd") enabledSockets);
  # Interface names get per-interface rules; addresses need the port open on every interface
  # (the socket only listens on that address anyway); loopback is always trusted.
  firewallFor = ifaces: ports:
    if ifaces == [ ] then { global = ports; perInterface = { }; }
    else {
      global = if any (i: isAddress i && !isLoopback i) ifaces then ports else [ ];
      perInterface = listToAttrs (map (i: nameValuePair i ports)
        (filter (i: !isAddress i && !isLoopbackName i) ifaces));
    };
  fwSmtp = firewallFor cfg.smtp.interfaces smtpPorts;
  fwAccess = firewallFor cfg.access.interfaces accessPorts;

  # ------------------------------------------------------------------------------ directories
  defaultState = "/var/lib/icsmail";
  underDefaultState = p: p == defaultState || hasPrefix "${defaultState}/" p;
  extraDirs = unique (filter (p: !underDefaultState p) [ cfg.stateDir cfg.storage.path ]);
  # The units that write to the store: during a storage move they also need the tree in
  # force (the old one), which the activation script below gives them.
  storeUnits = [ "icsmail-smtpd" "icsmail-imapd" "icsmail-pop3d" "icsmail-admin" "icsmail-queue"
    "icsmail-storage-move" ];
  storeDropIn = "50-icsmail-store-in-force.conf";

  # ------------------------------------------------------------------------------ assertions
  # Secrets named by a store path: the Nix store is world-readable, so the file would be
  # readable by every local user (and copied to every machine the closure goes to).
  inStore = p: p != null && hasPrefix "${builtins.storeDir}/" p;
  secretPaths =
    lib.mapAttrsToList (address: a: { option = "accounts.\"${address}\".hashedPasswordFile"; path = a.hashedPasswordFile; }) cfg.accounts
    ++ [
      { option = "relay.auth.passwordFile"; path = cfg.relay.auth.passwordFile; }
      { option = "smtp.certificate.keyFile"; path = if cfg.smtp.certificate == null then null else cfg.smtp.certificate.keyFile; }
      { option = "access.certificate.keyFile"; path = if cfg.access.certificate == null then null else cfg.access.certificate.keyFile; }
      { option = "dkim.keyDirectory"; path = cfg.dkim.keyDirectory; }
    ];
  storeSecretErrors = map (s: "services.icsMail.${s.option} = \"${s.path}\" is in the Nix store, which every local user can read: put the secret in a file outside the store (e.g. deployed by agenix, sops-nix or systemd credentials) and give that file's path as a string.")
    (filter (s: inStore s.path) secretPaths);

  # the webmail's TLS certificate when not from ACME: the one IMAP (else SMTP) uses
  webmailCert = if cfg.access.certificate != null then cfg.access.certificate else cfg.smtp.certificate;
  # storage.defaultFolders, or the program's default (the same four roles)
  webmailFolders = if cfg.storage.defaultFolders != null then cfg.storage.defaultFolders else [
    { name = "Drafts"; specialUse = "drafts"; } { name = "Sent"; specialUse = "sent"; }
    { name = "Trash"; specialUse = "trash"; } { name = "Junk"; specialUse = "junk"; }
  ];
  phpString = s: "'" + builtins.replaceStrings [ "\\" "'" ] [ "\\\\" "\\'" ] s + "'";
  localReachable = ifaces: ifaces == [ ] || any (i: isLoopback i || isLoopbackName i) ifaces;
  baseDns = filter (d: d != "") (map lib.trim (lib.splitString ";" cfg.addressBook.baseDn));
in
{
  options.services.icsMail = {
    # ---------------------------------------------------------------- Nix-only options
    enable = mkEnableOption "ics-mail, the SMTP/IMAP/POP3 mail server (its sockets, daemons and queue timer)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { } (the flake sets its own build)";
      description = "The ics-mail build to use.";
    };

    openFirewall = opt types.bool false ''
      The seed's "Automatically create a permitting rule": open the firewall for every enabled
      port (SMTP, submission when set, SMTPS when enabled, IMAP, POP3, IMAPS/POP3S when
      implicit TLS is enabled). Where `smtp.interfaces` / `access.interfaces` name interfaces,
      only on those (`networking.firewall.interfaces.<name>`); addresses open the port on all
      interfaces (the socket listens on that address only); loopback needs no rule.
    '';

    webmail = {
      enable = mkEnableOption ''
        a NixOS Roundcube (`services.roundcube`) pointed at this server: IMAP and submission on
        localhost, its attachment limit from `smtp.maxMessageSize`, and the LDAP address book
        when `addressBook.enable` (unless `webmail.addressBook = false`)
      '';
      hostName = mkOption {
        type = types.str;
        default = if cfg.heloName != null then cfg.heloName else config.networking.fqdnOrHostName;
        defaultText = literalExpression "heloName, or networking.fqdnOrHostName";
        description = "Virtual host name of the webmail (`services.roundcube.hostName`).";
      };
      addressBook = opt types.bool true ''
        Give Roundcube the LDAP address book (when `addressBook.enable`). The seed's
        "Use ICS Address Book" for the webmail side.
      '';
      acme = opt types.bool false ''
        Get the certificate of the webmail's nginx virtual host from ACME (`enableACME`;
        `security.acme` must be set up). Off (the default): nginx serves HTTPS with the mail
        services' own certificate, `access.certificate` (else `smtp.certificate`), whose key
        nginx must be able to read too; with neither (`tls.mode = "none"`) the webmail is
        plain HTTP, with a warning.
      '';
    };

    # ---------------------------------------------------------------- accounts and domains
    domains = withExample [ "example.org" "example.net" ] (opt (types.listOf types.str) [ ] ''
      The mail domains this server is final destination for (compared case-insensitively).
      Mail to other domains is refused unless relayed for an authenticated or whitelisted client.
    '');
    accounts = mkOption {
      type = types.attrsOf accountType;
      default = { };
      example = literalExpression ''
        { "alice@example.org" = { hashedPasswordFile = "/var/lib/icsmail/secrets/alice.hash"; aliases = [ "postmaster@example.org" ]; }; }
      '';
      description = "One mailbox per attribute; the name is its address, whose domain must be in `domains`.";
    };
    heloName = withExample "mail.example.org" (nullOpt types.str ''
      "Server name for SMTP HELO": the host name passed in HELO/EHLO to the remote party when
      sending, and used in the greeting, the EHLO reply and Received headers. ASCII (an
      internationalised name in its `xn--` form). null = the machine's host name.
    '');
    defaultAuthDomain = withExample "example.org" (nullOpt types.str ''
      "Default authorization domain": users of this domain may log in with the local part alone
      (`usermail` for `usermail@example.org`), in mail clients and the webmail. Must be one of
      `domains`.
    '');
    stateDir = opt absPath defaultState ''
      Queue, greylist data and runtime overrides (IMAP UIDs and flags live with the mail). Created (owned by `icsmail`)
      and made writable for the daemons when outside /var/lib/icsmail.
    '';

    # ---------------------------------------------------------------- SMTP
    smtp = {
      port = opt portType 25 ''
        "SMTP port": where other mail servers deliver mail for `domains` (the MX port; STARTTLS
        offered when `tls.mode` is not `none`). Other servers only ever use 25.
      '';
      interfaces = withExample [ "eth0" "192.0.2.10" "lo" ] (opt (types.listOf interfaceType) [ ] ''
        "SMTP interfaces": IP addresses or interface names SMTP, submission and SMTPS listen on;
        empty = every address. An address becomes `ListenStream=ADDR:PORT` (with FreeBind), a
        name `BindToDevice=NAME` in the socket units.
      '');
      submissionPort = mkOption {
        type = types.nullOr portType;
        default = 587;
        description = ''
          Message submission (RFC 6409): where mail clients hand in outgoing mail, after AUTH
          (STARTTLS first when `tls.mode` is `required`). null disables submission.
        '';
      };
      maxMessageSize = opt types.ints.unsigned 26214400 ''
        "Maximum message size" in bytes (1024 to 1073741824), advertised as SIZE; larger mail is
        refused with 552. Also the webmail's attachment limit (less base64's 37 %).
      '';
      smtputf8 = progOpt types.bool "true" ''
        "SMTPUTF8 support" (RFC 6531): accept and send mail with UTF-8 addresses and headers.
      '';
      certificate = nullOpt certificateType ''
        "SMTP certificate": PEM chain and key for STARTTLS and SMTPS; reloaded on
        `systemctl reload icsmail-smtpd` (SIGHUP).
      '';
      smtps = {
        enable = opt types.bool false ''
          "Enable SMTPS": also listen on `smtp.smtps.port` for implicit-TLS SMTP (RFC 8314),
          beside port 25; encryption is mandatory there, with no plain-text fallback. Needs
          `smtp.certificate`.
        '';
        port = opt portType 465 ''
          "SMTPS port": where clients submit over implicit TLS (TLS from the first byte, then AUTH),
          when `smtp.smtps.enable`. 465 is the standard port.
        '';
      };
      limits = {
        maxRecipients = progOpt u32Type "100" "Recipients per message; more get `452 4.5.3`.";
        maxErrors = progOpt u32Type "10" "Error replies per session before `421` and disconnect.";
        commandTimeout = progOpt u32Type "300" "Seconds to wait for the next command.";
        dataTimeout = progOpt u32Type "600" "Seconds to wait for the next block of message data.";
        connectionsPerIp = progOpt u32Type "50" "Simultaneous connections from one client address.";
        maxConnections = progOpt u32Type "1000" "Simultaneous SMTP connections in all.";
      };
    };

    # ---------------------------------------------------------------- IMAP / POP3
    access = {
      interfaces = withExample [ "lo" "eth1" ] (opt (types.listOf interfaceType) [ ] ''
        "POP3/IMAP interfaces": the same as `smtp.interfaces`, for IMAP, IMAPS, POP3 and POP3S.
      '');
      certificate = nullOpt certificateType "\"POP3/IMAP certificate\": for STARTTLS/STLS and IMAPS/POP3S.";
      implicitTls.enable = opt types.bool false ''
        "Enable POP3S/IMAPS": also listen on `imap.imapsPort` and `pop3.pop3sPort`, where
        encryption is mandatory (TLS from the first byte). Needs `access.certificate`.
      '';
    };
    imap = {
      port = opt portType 143 ''
        "IMAP port": where mail clients read and manage their folders on the server (IMAP4rev1;
        STARTTLS offered when `tls.mode` is not `none`).
      '';
      imapsPort = opt portType 993 ''
        "IMAPS port": IMAP over implicit TLS, when `access.implicitTls.enable`.
      '';
    };
    pop3 = {
      port = opt portType 110 ''
        "POP3 port": where mail clients download the INBOX (POP3; STLS offered when `tls.mode` is
        not `none`).
      '';
      pop3sPort = opt portType 995 ''
        "POP3S port": POP3 over implicit TLS, when `access.implicitTls.enable`.
      '';
    };

    # ---------------------------------------------------------------- encryption
    tls = {
      mode = opt (types.enum [ "none" "optional" "required" ]) "none" ''
        Encryption mode "Not use" / "May use" / "Use": `none` (no STARTTLS), `optional`
        (STARTTLS offered, plain logins allowed), `required` (logins only inside TLS).
        Anything but `none` needs `smtp.certificate` and `access.certificate`. TLS 1.2 and 1.3 only.
      '';
      dhKeyLength = progOpt u32Type "2048" ''
        "DH key length" (2048, 3072 or 4096; the seed's 1024 is refused), as the minimum
        key-exchange strength (rustls has ECDHE only): 2048 and 3072 allow every group, 4096
        only P-384 and X25519MLKEM768 (docs/settings.md).
      '';
    };

    # ---------------------------------------------------------------- sending
    rateLimit = {
      enable = opt types.bool false ''
        "Restrict frequent mail sending": limit the messages one client IP address may send per
        minute (`rateLimit.messagesPerMinute`); mail from the webmail is never limited.
      '';
      messagesPerMinute = progOpt u32Type "60" "\"Maximum number of messages from one IP per minute\"; more get `450 4.7.1`.";
      exemptWhitelist = progOpt types.bool "true" ''
        "Ignore sending mails from permitted addresses and networks": the IP addresses and
        networks of `lists.whitelist` are not rate-limited.
      '';
    };
    queue = {
      interval = opt intervalType 30 ''
        "Interval between sending queued mails", in minutes: how often the queue runner starts
        (the period of icsmail-queue.timer).
      '';
      delayMin = progOpt u32Type "180" ''
        "Queue delay from" (minutes): the wait before the first retry of a message that could not
        be delivered; it grows with each further failure up to `queue.delayMax`.
      '';
      delayMax = progOpt u32Type "300" "\"Queue delay … to\" (minutes): the longest wait between two retries.";
      maxLifetime = progOpt u32Type "5760" ''
        "Maximum queue lifetime" (minutes): after this long in the queue a message is given up
        and its sender gets a delivery status notification (bounce).
      '';
    };
    relay = {
      host = withExample "smtp.provider.example" (nullOpt types.str ''
        "Default relay": send all mail for non-local recipients through this smarthost (host name
        or IP address) instead of to the recipients' MX. null = direct MX delivery.
      '');
      port = progOpt portType "25" ''
        "Connection port" of the smarthost in `relay.host`: 25 or 587 (STARTTLS whenever the
        smarthost offers it), 465 with `relay.smtps`.
      '';
      smtps = opt types.bool false ''
        "Use SMTPS" to the smarthost: implicit TLS, as port 465 needs. Leave it off for 25/587,
        where STARTTLS is used automatically when offered. Needs `relay.host`.
      '';
      auth = {
        enable = opt types.bool false ''
          "Use SMTP authentication": log in to the smarthost. Needs `relay.host`,
          `relay.auth.user` and `relay.auth.passwordFile`.
        '';
        user = withExample "mailer@example.org" (nullOpt types.str "User name at the smarthost (\"SMTP authentication\").");
        passwordFile = withExample "/run/secrets/icsmail-relay-password" (nullOpt absPath ''
          File whose first line is the smarthost password (readable by `icsmail`; never in the
          JSON, and refused inside the Nix store).
        '');
      };
      changeSender = {
        enable = opt types.bool false ''
          "Change sender email": rewrite the envelope sender and From: of relayed mail to
          `relay.changeSender.address`, for providers that accept only their logged-in user as
          sender.
        '';
        address = withExample "mailer@example.org" (nullOpt types.str ''
          "Sender email" used when `relay.changeSender.enable`; must be a valid address.
        '');
      };
    };

    # ---------------------------------------------------------------- policy
    lists = {
      whitelist = withExample [ "192.0.2.0/24" "2001:db8::/32" "partner.example" "*.trusted.example" "boss@partner.example" ]
        (opt (types.listOf types.str) [ ] ''
          "Whitelist": IP addresses, CIDR networks, domains or mail server names (`*.example.com`),
          mailboxes. Always accepted, without greylisting or the forward/reverse DNS check, and
          may relay: only truly trusted senders belong here.

          Entries (docs/policy.md): `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32` (the client's
          address), `example.com` or `*.example.com` (a sender in that domain or below, and a
          client whose forward-confirmed host name is that name or below: a mail server),
          `user@example.com` (that sender). Only address, network and host-name matches let a
          client relay without logging in (a sender can be forged); with
          `rateLimit.exemptWhitelist`, address and network entries are not rate-limited.
        '');
      blacklist = withExample [ "198.51.100.7" "203.0.113.0/24" "spam.example" ]
        (opt (types.listOf types.str) [ ] ''
          "Blacklist": the same forms as the whitelist; mail from them is refused with
          `554 5.7.1`: a client named by its address, network or host name before the greeting,
          a sender at MAIL FROM. The whitelist wins where both name a client.
        '');
    };
    storage = {
      path = opt absPath "/var/lib/icsmail/mail" ''
        "Drive for keeping mail": root of the Maildir++ store (`<path>/<domain>/<local part>/`).
        Created and made writable for the daemons when outside /var/lib/icsmail.
      '';
      defaultFolders = withExample (literalExpression ''
        [ { name = "Drafts"; specialUse = "drafts"; } { name = "Sent"; specialUse = "sent"; }
          { name = "Archive"; specialUse = "archive"; } { name = "Archive.2024"; } ]
      '') (progOpt (types.listOf folderType)
        "[ Drafts (drafts) Sent (sent) Trash (trash) Junk (junk) ]" ''
          "On creating a mailbox automatically create next folders": the folders every mailbox
          gets, with their SPECIAL-USE roles (each role once; not INBOX).
        '');
    };
    antivirus = {
      clamav = {
        enable = opt types.bool false ''
          Anti-virus "Clamav": scan incoming and outgoing mail with clamd (its `INSTREAM`
          command); for an infected message the sender gets `250` and the recipients a notice
          naming the scanner and the virus, with the message attached. clamd down or slower
          than 60 s: `451 4.7.1` (the sender retries); a message over clamd's `StreamMaxLength`:
          `552 5.3.4`, so keep that at least `smtp.maxMessageSize` (docs/filters.md).
        '';
        socket = progOpt clamdSocket "/run/clamav/clamd.ctl" "Where clamd listens: the absolute path of its Unix socket (`LocalSocket`), or `tcp://host:port` (`TCPSocket`).";
      };
      kaspersky = {
        enable = opt types.bool false "Anti-virus \"Kaspersky Antivirus\": the same check through a Kaspersky ICAP server (ICAP `RESPMOD`; clamd is asked first when both are on). Infected: the notice as for clamd; the server down or slower than 60 s: `451 4.7.1` (docs/filters.md).";
        icapUrl = withExample "icap://127.0.0.1:1344/av/respmod" (nullOpt types.str ''
          `icap://host[:port]/service` of the Kaspersky ICAP server (port 1344 when not given).
        '');
      };
    };
    dkim = {
      verify = opt types.bool false "\"Verify DKIM-signature\": check the DKIM signatures of inbound mail (port 25, no login), with the SPF and DMARC results beside them, in one `Authentication-Results:` field named by this server's host name (fields claiming that name are removed first). Results are reported, never a reason to refuse mail (docs/filters.md, \"DKIM, SPF and DMARC\").";
      sign = opt types.bool false "\"Add DKIM-signature\" to mail from this server's domains: what leaves through the queue (after every rewrite) and local-to-local submissions, with the domain's keys in `dkim.keyDirectory` (RSA and/or Ed25519). Make a key with `icsmail dkim-keygen --config /etc/icsmail/config.json --domain D [--algorithm ed25519]`, publish the printed TXT record, then reload.";
      selector = withExample "mail2024" (progOpt types.str "\"default\"" ''
        DKIM "Selector" of this server: the RSA public key is published at
        `<selector>._domainkey.<domain>`, the Ed25519 one at
        `<selector>-ed25519._domainkey.<domain>`. Each mail server of one domain needs its own
        selector.
      '');
      keyDirectory = opt absPath "${defaultState}/dkim" "Directory of the DKIM private keys (PEM, readable by the user `icsmail`): `<domain>.<selector>.rsa.pem` and `<domain>.<selector>.ed25519.pem`. With `dkim.sign` it is made (0700, owned by `icsmail`) at boot.";
    };
    dlp = {
      enable = opt types.bool false "\"Use DLP\": pass outgoing mail (logged-in clients, mail relayed by whitelisted clients) to a DLP system by ICAP `REQMOD` (`dlp.icapUrl`) before it is queued. Blocked: `550 5.7.1` naming the rule; the system down or slower than 60 s: `451 4.7.1` (docs/filters.md).";
      icapUrl = withExample "icap://dlp.example.org:1344/dlp" (nullOpt types.str "`icap://host[:port]/service` URL of the DLP system (port 1344 when not given).");
    };
    recodeSubjectUtf8 = opt types.bool false "\"Recode subject to UTF-8\": the Subject of mail sent from this server (by logged-in clients, or relayed) is rewritten as UTF-8 encoded-words, from the charset its encoded-words or the message declare, or a guessed one for undeclared 8-bit text (docs/filters.md).";
    spam = {
      dnsbl = withExample [ "zen.spamhaus.org" "bl.spamcop.net" ] (opt (types.listOf types.str) [ ] ''
        "DNSBL blacklists": DNS zones asked about the sending client's IP address while mail is
        received (at MAIL FROM; logged-in and whitelisted clients are not asked about); a client
        listed by one of them is refused with `554 5.7.1` naming the zone and its reason.
      '');
      dnsblUnreachable = withExample "reject" (progOpt types.str "\"tempfail\"" ''
        What a DNSBL that does not answer means: `"tempfail"` refuses with `451 4.7.1` (the
        sender retries, nothing is lost while a list is down), `"reject"` with `554 5.7.1` (the
        seed's literal reading: "no response at all" refuses too, and legitimate mail is lost
        whenever a list is down).
      '');
      requireReverseDns = withExample true (progOpt types.bool "null: the same as spam.greylist.enable" ''
        Refuse with `450 4.7.25` (temporarily) a client that did not log in and whose address has
        no forward-confirmed reverse DNS name (a PTR name that resolves back to it), unless it is
        whitelisted. null (the default): on exactly when greylisting is on.
      '');
      greylist = {
        enable = opt types.bool false ''
          "Use grey lists": on port 25, a recipient of an unknown (client /24 or /64 network,
          sender, recipient) triplet is refused with `451 4.7.1` for now; a real mail server
          retries and is then accepted, and its network passes without delay from then on, most
          spam senders never retry. Logged-in and whitelisted clients and whitelisted senders
          are never greylisted. The state is kept in `stateDir` (greylist.sqlite3) across
          restarts (docs/policy.md).
        '';
        ignoreSeconds = progOpt u32Type "60" ''
          "Ignore resending": a retry sooner than this many seconds does not count (a reliable
          server does not resend that fast). Shorter than `awaitHours`.
        '';
        awaitHours = progOpt u32Type "4" ''
          "Await resending": a retry must come within this many hours, or the triple starts over.
        '';
        keepDays = progOpt u32Type "36" ''
          "Keep in white list": a network that passed is not greylisted again for this many
          days after its last mail (its mail renews the entry, at most once a day).
        '';
      };
    };
    addressBook = {
      enable = opt types.bool false ''
        Run the read-only LDAP address book (`icsmail ldapd`, socket-activated; docs/ldap.md):
        every mailbox as an inetOrgPerson entry under each `baseDn`, on `port` (StartTLS) and,
        with `access.implicitTls.enable`, `ldapsPort`, on `access.interfaces`. Needs a `baseDn`.
      '';
      port = opt portType 389 "\"The port on which LDAP is running\" (the address book's LDAP listener, StartTLS).";
      ldapsPort = opt portType 636 "LDAPS (TLS from the first byte) of the address book, when `access.implicitTls.enable`.";
      baseDn = withExample "dc=example,dc=org;ou=people,dc=example,dc=net" (opt types.str "" ''
        "Base DN": the LDAP search base(s) clients use; several are separated by `;`.
      '');
      publishToClients = progOpt types.bool "true" "\"Use ICS Address Book\": publish the book to users' mail clients (bound with their account). Off, only the webmail (anonymous, from this host) reads the entries.";
    };
    dns.nameservers = withExample [ "127.0.0.1:53" "[::1]:53" ] (opt (types.listOf types.str) [ ] ''
      Resolvers for MX and DNSBL lookups, as `ip` or `ip:port` (`[::1]:53`); empty =
      /etc/resolv.conf.
    '');

    # ---------------------------------------------------------------- internal
    generated = mkOption {
      internal = true;
      readOnly = true;
      type = types.attrs;
      default = {
        inherit configText checkCommand icsmail;
        uncheckedConfig = "${uncheckedConfig}";
        configFile = checkedConfig;
      };
      defaultText = literalExpression "{ configText, uncheckedConfig, checkCommand, icsmail, configFile }";
      description = ''
        What the module generates from the options, for tooling and debugging
        (nixos-module/eval/check.sh): the config.json text, the build-time check's command and
        the checked file that /etc/icsmail/config.json links to.
      '';
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      # Only what Nix alone can know; every value of the JSON is checked by the program at
      # build time (checkedConfig above).
      assertions = [
        {
          assertion = cfg.webmail.enable -> localReachable cfg.access.interfaces && localReachable cfg.smtp.interfaces;
          message = "services.icsMail.webmail.enable: Roundcube talks to IMAP and submission on localhost; add \"lo\" (or 127.0.0.1) to services.icsMail.access.interfaces and smtp.interfaces.";
        }
      ]
      ++ map (message: { assertion = false; inherit message; }) storeSecretErrors;

      users.users.icsmail = {
        isSystemUser = true;
        group = "icsmail";
        home = cfg.stateDir;
        description = "ics-mail daemons";
      };
      users.groups.icsmail = { };
      # Members may call the admin service on D-Bus (docs/dbus.md): users.users.<name>.extraGroups.
      users.groups.icsmail-admin = { };

      # The admin service's bus policy and its bus activation (units/dbus/).
      services.dbus.packages = [
        (pkgs.runCommand "icsmail-dbus" { } ''
          mkdir -p $out/share/dbus-1/system.d $out/share/dbus-1/system-services
          cp ${../units/dbus}/org.icsmail.Mail1.conf $out/share/dbus-1/system.d/
          sed -e 's|/bin/false|${pkgs.coreutils}/bin/false|' ${../units/dbus}/org.icsmail.Mail1.service \
            > $out/share/dbus-1/system-services/org.icsmail.Mail1.service
        '')
      ];

      environment.etc."icsmail/config.json".source = checkedConfig;
      # The polkit action of the admin service, and the rule that lets icsmail-admin manage
      # without authenticating (docs/dbus.md, "Who may call"), where polkit runs.
      environment.systemPackages = [
        cfg.package
        (pkgs.runCommand "icsmail-polkit-action" { } ''
          mkdir -p $out/share/polkit-1/actions
          cp ${../units/polkit}/org.icsmail.Mail1.policy $out/share/polkit-1/actions/
        '')
      ];
      security.polkit.extraConfig = mkIf config.security.polkit.enable
        (builtins.readFile ../units/polkit/50-org.icsmail.Mail1.rules);

      # The unit files of units/, with this package's binary (overridden below as well).
      systemd.packages = [
        (pkgs.runCommand "icsmail-units" { } ''
          mkdir -p $out/lib/systemd/system
          cp ${../units}/*.service ${../units}/*.socket ${../units}/*.timer $out/lib/systemd/system/
          sed -i -e 's|/usr/bin/icsmail|${icsmail}|g' -e 's|/bin/kill|${pkgs.coreutils}/bin/kill|g' \
            $out/lib/systemd/system/*
        '')
      ];

      # While a storage move runs, the tree the `mail-root` link names (the old storage.path)
      # stays writable for the units that write mail, through runtime drop-ins made here at
      # every activation and boot, before the units (re)start; none once the move switched.
      system.activationScripts.icsmail-storage = ''
        link=${lib.escapeShellArg "${cfg.stateDir}/mail-root"}
        for unit in ${concatStringsSep " " storeUnits}; do
          rm -f "/run/systemd/system/$unit.service.d/${storeDropIn}"
        done
        if [ -L "$link" ]; then
          tree=$(readlink "$link")
          case "$tree" in
            ${lib.escapeShellArg cfg.storage.path} | ${defaultState} | ${defaultState}/*) ;;
            *)
              for unit in ${concatStringsSep " " storeUnits}; do
                mkdir -p "/run/systemd/system/$unit.service.d"
                printf '[Service]\nReadWritePaths=-%s\n' "$tree" \
                  > "/run/systemd/system/$unit.service.d/${storeDropIn}"
              done ;;
          esac
        fi
      '';

      systemd.tmpfiles.rules = map (d: "d ${d} 0750 icsmail icsmail - -") extraDirs
        ++ lib.optional cfg.dkim.sign
          "d ${cfg.dkim.keyDirectory} 0700 icsmail icsmail - -";

      systemd.services = listToAttrs (map (daemon: nameValuePair "icsmail-${daemon}" {
        # ExecStart= from this module's package, whatever the unit file says
        serviceConfig = {
          ExecStart = [ "" "${icsmail} ${daemon} --config ${configPath}" ];
          ExecReload = [ "" "${pkgs.coreutils}/bin/kill -HUP $MAINPID" ];
          ReadWritePaths = extraDirs;
        };
        restartTriggers = [ config.environment.etc."icsmail/config.json".source ];
      }) ([ "smtpd" "pop3d" "imapd" ] ++ lib.optional cfg.addressBook.enable "ldapd"))
      // {
        icsmail-admin = {
          serviceConfig = {
            ExecStart = [ "" "${icsmail} admind --config ${configPath}" ];
            ReadWritePaths = extraDirs;
          };
          restartTriggers = [ config.environment.etc."icsmail/config.json".source ];
        };
        icsmail-queue = {
          serviceConfig = {
            ExecStart = [ "" "${icsmail} queue run --config ${configPath}" ];
            ReadWritePaths = extraDirs;
          };
          restartTriggers = [ config.environment.etc."icsmail/config.json".source ];
        };
        # A changed storage.path moves the mail there (docs/storage.md, "Moving the store"):
        # started at every activation whose configuration changed, a no-op when the store is
        # where storage.path says; the daemons keep serving from the old tree until it switches.
        icsmail-storage-move = {
          wantedBy = [ "multi-user.target" ];
          serviceConfig = {
            ExecStart = [ "" "${icsmail} storage-move --config ${configPath}" ];
            ReadWritePaths = extraDirs;
          };
          restartTriggers = [ config.environment.etc."icsmail/config.json".source ];
        };
      };

      systemd.sockets = listToAttrs (map (u: nameValuePair u.unit (
        if elem u.unit packagedSocketNames then {
          # a unit of units/: reset its ListenStream= and listen where configured
          wantedBy = [ "sockets.target" ];
          listenStreams = [ "" ] ++ u.listen;
          socketConfig = u.config;
        } else {
          description = "ics-mail ${u.sock.name} socket on ${u.config.BindToDevice or "?"}";
          wantedBy = [ "sockets.target" ];
          listenStreams = u.listen;
          socketConfig = u.config;
        }
      )) allSocketUnits);

      systemd.timers.icsmail-queue = {
        wantedBy = [ "timers.target" ];
        timerConfig = timerFor cfg.queue.interval;
      };
    }

    (mkIf cfg.openFirewall {
      networking.firewall.allowedTCPPorts = unique (fwSmtp.global ++ fwAccess.global);
      networking.firewall.interfaces = lib.zipAttrsWith (_: lists: { allowedTCPPorts = unique (lib.flatten lists); })
        [ fwSmtp.perInterface fwAccess.perInterface ];
    })

    (mkIf cfg.webmail.enable {
      warnings = lib.optional (!cfg.webmail.acme && webmailCert == null)
        "services.icsMail.webmail: no certificate (access.certificate, smtp.certificate) and webmail.acme is off, so the webmail is served over plain HTTP and its logins cross the network in clear text.";
      services.roundcube = {
        enable = true;
        hostName = mkDefault cfg.webmail.hostName;
        # nixpkgs derives max_message_size and PHP's upload limits from this (x 1.37); both
        # are set exactly below, this only keeps nixpkgs' own lines in range
        maxAttachmentSize = mkDefault (lib.max 1 ((cfg.smtp.maxMessageSize * 100) / (137 * 1048576)));
        extraConfig =
          let
            tlsPrefix = optionalString (cfg.tls.mode == "required") "tls://";
            submission = if cfg.smtp.submissionPort != null then cfg.smtp.submissionPort else cfg.smtp.port;
            ldap = optionalString (cfg.addressBook.enable && cfg.webmail.addressBook) (concatStringsSep "\n" (lib.imap0 (i: dn: ''
              $config['ldap_public']['icsmail${toString i}'] = [
                'name' => ${phpString "Address book (${dn})"},
                // Roundcube 1.6 takes the port from here only (a 'port' key is ignored)
                'hosts' => ['localhost:${toString cfg.addressBook.port}'],
                'ldap_version' => 3,
                'user_specific' => false,
                'base_dn' => ${phpString dn},
                'scope' => 'sub',
                'search_fields' => ['mail', 'cn'],
                'name_field' => 'cn',
                'email_field' => 'mail',
                'fieldmap' => ['name' => 'cn', 'email' => 'mail:*'],
                'readonly' => true,
                'fuzzy_search' => true,
              ];
            '') baseDns) + ''
              $config['autocomplete_addressbooks'] = array_merge(['sql'], array_keys($config['ldap_public']));
            '');
          in
          ''
            // ics-mail (services.icsMail.webmail): this server on localhost
            $config['imap_host'] = '${tlsPrefix}localhost:${toString cfg.imap.port}';
            $config['smtp_host'] = '${tlsPrefix}localhost:${toString submission}';
            $config['smtp_user'] = '%u';
            $config['smtp_pass'] = '%p';
            // Roundcube counts an attachment as 1.33 x its size (+10 KiB body) against this;
            // base64 in 76-character lines grows by 1.37: x 133/137 keeps what it admits
            // within smtp.maxMessageSize once encoded
            $config['max_message_size'] = ${toString (cfg.smtp.maxMessageSize * 133 / 137)};
            // the folders of storage.defaultFolders (ics-mail makes them); Roundcube names
            // folders in IMAP's modified UTF-7
            $config['create_default_folders'] = false;
            $config['show_real_foldernames'] = true;
          ''
          # a role no folder has: '' (no such folder; e.g. no trash: delete removes for good)
          + lib.concatMapStrings (role:
            let f = lib.findFirst (f: f.specialUse == role) null webmailFolders; in
            if f == null then "$config['${role}_mbox'] = '';\n"
            else "$config['${role}_mbox'] = rcube_charset::convert(${phpString f.name}, 'UTF-8', 'UTF7-IMAP');\n")
            [ "drafts" "sent" "junk" "trash" ]
          + optionalString (cfg.tls.mode == "required") ''
            // STARTTLS over loopback: the certificate names the public host, not localhost
            $config['imap_conn_options'] = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]];
            $config['smtp_conn_options'] = ['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]];
          ''
          + optionalString (cfg.defaultAuthDomain != null) ''
            $config['username_domain'] = ${phpString cfg.defaultAuthDomain};
          ''
          + ldap;
      };
      # PHP's own limits are smtp.maxMessageSize (appended last, so they win over nixpkgs'):
      # Roundcube's per-file limit, max_message_size / 1.33, stays below them and acts first
      services.phpfpm.pools.roundcube.phpOptions = lib.mkAfter ''
        upload_max_filesize = ${toString cfg.smtp.maxMessageSize}
        post_max_size = ${toString cfg.smtp.maxMessageSize}
      '';
      services.nginx.virtualHosts.${config.services.roundcube.hostName} =
        if cfg.webmail.acme then { enableACME = true; forceSSL = true; }
        else if webmailCert != null then {
          enableACME = false;
          forceSSL = true;
          sslCertificate = webmailCert.certFile;
          sslCertificateKey = webmailCert.keyFile;
        }
        else { enableACME = false; forceSSL = false; };
    })
  ]);
}
