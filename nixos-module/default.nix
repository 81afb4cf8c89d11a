# NixOS module: services.icsMail (docs/nixos.md).
#
# Every setting of docs/settings.md is an option here, at the same path as its JSON key; the
# module writes them to /etc/icsmail/config.json (builtins.toJSON), installs the units of
# units/ (systemd.packages) and sets their listen addresses, ports, timer and firewall from the
# options. The Nix-only options are `enable`, `package`, `openFirewall` and `webmail.*`.
#
# Defaults (docs/nixos.md, "Defaults"): the program owns its defaults (src/config/model.rs). An
# option the module does not act on defaults to null, which leaves its key out of the JSON so
# the program's default applies. The options the module acts on itself (ports, interfaces,
# the listeners' enable switches, tls.mode, queue.interval, stateDir, storage.path,
# smtp.maxMessageSize, the relay/antivirus/DLP/address book switches its assertions read) carry
# their real default, equal to the program's, and are always written. `smtp.submissionPort` is
# written even when null: there null means "submission disabled".
{ config, lib, pkgs, ... }:

let
  inherit (lib)
    mkOption mkEnableOption mkIf mkMerge mkDefault types literalExpression optional optionals
    optionalString concatStringsSep concatMap filter filterAttrs mapAttrs mapAttrs' nameValuePair
    attrValues attrNames length head tail unique any all hasPrefix elem listToAttrs genList
    groupBy escapeShellArg;

  cfg = config.services.icsMail;

  # ------------------------------------------------------------------------------ types
  portType = types.ints.between 1 65535;
  countType = types.ints.between 1 4294967295;
  u32Type = types.ints.u32;
  # Paths are strings, never Nix path values: a path literal would copy the file (a secret,
  # say) into the world-readable Nix store.
  absPath = types.strMatching "/.*" // {
    description = "absolute path (a string: the file stays out of the Nix store)";
  };
  interfaceType = types.strMatching "[A-Za-z0-9_.@:%-]+" // {
    description = "IP address or network interface name";
  };
  specialUses = [ "all" "archive" "drafts" "flagged" "junk" "sent" "trash" ];

  opt = type: default: description: mkOption { inherit type default description; };
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
      quota = nullOpt types.ints.positive "Mailbox size limit in bytes; null = unlimited.";
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
      inherit (cfg.spam) dnsbl;
      greylist = { inherit (cfg.spam.greylist) enable ignoreSeconds awaitHours keepDays; };
    };
    addressBook = { inherit (cfg.addressBook) enable port baseDn publishToClients; };
    dns = { inherit (cfg.dns) nameservers; };
  };
  # null is meaningful here: submission disabled (the program's default is 587)
  configJson = settings // { smtp = settings.smtp // { inherit (cfg.smtp) submissionPort; }; };

  configPath = "/etc/icsmail/config.json";
  icsmail = "${cfg.package}/bin/icsmail";

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

  # ------------------------------------------------------------------------------ checks
  domainOf = addr: let parts = lib.splitString "@" addr; in lib.toLower (lib.last parts);
  lowerDomains = map lib.toLower cfg.domains;
  accountErrors = concatMap (address:
    let a = cfg.accounts.${address}; in
    optional ((a.hashedPassword == null) == (a.hashedPasswordFile == null))
      "services.icsMail.accounts.\"${address}\": set exactly one of hashedPassword and hashedPasswordFile."
    ++ optional (!(elem (domainOf address) lowerDomains))
      "services.icsMail.accounts.\"${address}\": its domain ${domainOf address} is not in services.icsMail.domains."
    ++ map (alias: "services.icsMail.accounts.\"${address}\".aliases: the domain of ${alias} is not in services.icsMail.domains.")
      (filter (alias: !(elem (domainOf alias) lowerDomains)) a.aliases)
  ) (attrNames cfg.accounts);

  overlaps = a: b: a.interfaces == [ ] || b.interfaces == [ ] || any (i: elem i b.interfaces) a.interfaces;
  portClashes =
    let
      listeners = enabledSockets
        ++ optional cfg.addressBook.enable { name = "ldap"; port = cfg.addressBook.port; interfaces = [ ]; };
      pairs = concatMap (i: map (j: [ (builtins.elemAt listeners i) (builtins.elemAt listeners j) ])
        (lib.range (i + 1) (length listeners - 1))) (lib.range 0 (length listeners - 1));
    in
    map (p: "services.icsMail: ${(head p).name} and ${(lib.last p).name} both use port ${toString (head p).port} on overlapping interfaces.")
      (filter (p: (head p).port == (lib.last p).port && overlaps (head p) (lib.last p)) pairs);

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
    };

    # ---------------------------------------------------------------- accounts and domains
    domains = opt (types.listOf types.str) [ ] ''
      The mail domains this server is final destination for (compared case-insensitively).
      Mail to other domains is refused unless relayed for an authenticated or whitelisted client.
    '';
    accounts = mkOption {
      type = types.attrsOf accountType;
      default = { };
      example = literalExpression ''
        { "alice@example.org" = { hashedPasswordFile = "/var/lib/icsmail/secrets/alice.hash"; aliases = [ "postmaster@example.org" ]; }; }
      '';
      description = "One mailbox per attribute; the name is its address, whose domain must be in `domains`.";
    };
    heloName = nullOpt types.str ''
      "Server name for SMTP HELO": the host name used in the greeting, EHLO, Received headers
      and outgoing HELO. null = the machine's host name.
    '';
    defaultAuthDomain = nullOpt types.str ''
      "Default authorization domain": the login `user` means `user@<domain>`. Must be one of `domains`.
    '';
    stateDir = opt absPath defaultState ''
      Queue, greylist data and runtime overrides (IMAP UIDs and flags live with the mail). Created (owned by `icsmail`)
      and made writable for the daemons when outside /var/lib/icsmail.
    '';

    # ---------------------------------------------------------------- SMTP
    smtp = {
      port = opt portType 25 "\"SMTP port\": inbound SMTP (MX).";
      interfaces = opt (types.listOf interfaceType) [ ] ''
        "SMTP interfaces": IP addresses or interface names SMTP, submission and SMTPS listen on;
        empty = every address. An address becomes `ListenStream=ADDR:PORT` (with FreeBind), a
        name `BindToDevice=NAME` in the socket units.
      '';
      submissionPort = mkOption {
        type = types.nullOr portType;
        default = 587;
        description = "Port for message submission (AUTH required); null disables submission.";
      };
      maxMessageSize = opt (types.ints.between 1024 1073741824) 26214400 ''
        "Maximum message size" in bytes (advertised as SIZE), also the webmail's attachment limit.
      '';
      smtputf8 = progOpt types.bool "true" "\"SMTPUTF8 support\" (RFC 6531) in EHLO.";
      certificate = nullOpt certificateType ''
        "SMTP certificate": PEM chain and key for STARTTLS and SMTPS; reloaded on
        `systemctl reload icsmail-smtpd` (SIGHUP).
      '';
      smtps = {
        enable = opt types.bool false "\"Enable SMTPS\": also listen for implicit-TLS SMTP. Needs `smtp.certificate`.";
        port = opt portType 465 "\"SMTPS port\".";
      };
      limits = {
        maxRecipients = progOpt countType "100" "Recipients per message; more get `452 4.5.3`.";
        maxErrors = progOpt countType "10" "Error replies per session before `421` and disconnect.";
        commandTimeout = progOpt countType "300" "Seconds to wait for the next command.";
        dataTimeout = progOpt countType "600" "Seconds to wait for the next block of message data.";
        connectionsPerIp = progOpt countType "50" "Simultaneous connections from one client address.";
        maxConnections = progOpt countType "1000" "Simultaneous SMTP connections in all.";
      };
    };

    # ---------------------------------------------------------------- IMAP / POP3
    access = {
      interfaces = opt (types.listOf interfaceType) [ ] ''
        "POP3/IMAP interfaces": the same as `smtp.interfaces`, for IMAP, IMAPS, POP3 and POP3S.
      '';
      certificate = nullOpt certificateType "\"POP3/IMAP certificate\": for STARTTLS/STLS and IMAPS/POP3S.";
      implicitTls.enable = opt types.bool false ''
        "Enable POP3S/IMAPS": also listen on `imap.imapsPort` and `pop3.pop3sPort`. Needs `access.certificate`.
      '';
    };
    imap = {
      port = opt portType 143 "\"IMAP port\".";
      imapsPort = opt portType 993 "\"IMAPS port\" (when `access.implicitTls.enable`).";
    };
    pop3 = {
      port = opt portType 110 "\"POP3 port\".";
      pop3sPort = opt portType 995 "\"POP3S port\" (when `access.implicitTls.enable`).";
    };

    # ---------------------------------------------------------------- encryption
    tls = {
      mode = opt (types.enum [ "none" "optional" "required" ]) "none" ''
        Encryption mode "Not use" / "May use" / "Use": `none` (no STARTTLS), `optional`
        (STARTTLS offered, plain logins allowed), `required` (logins only inside TLS).
        Anything but `none` needs `smtp.certificate` and `access.certificate`. TLS 1.2 and 1.3 only.
      '';
      dhKeyLength = progOpt (types.enum [ 2048 3072 4096 ]) "2048" ''
        "DH key length", as the minimum key-exchange strength (rustls has ECDHE only): 2048 and
        3072 allow every group, 4096 only P-384 and X25519MLKEM768 (docs/settings.md).
      '';
    };

    # ---------------------------------------------------------------- sending
    rateLimit = {
      enable = opt types.bool false "\"Restrict frequent mail sending\" (per client IP).";
      messagesPerMinute = progOpt u32Type "60" "\"Maximum number of messages from one IP per minute\".";
      exemptWhitelist = progOpt types.bool "true" "\"Ignore sending mails from permitted addresses and networks\" (`lists.whitelist`).";
    };
    queue = {
      interval = opt countType 30 ''
        "Interval between sending queued mails", in minutes: the period of icsmail-queue.timer.
      '';
      delayMin = progOpt countType "180" "\"Queue delay from\" (minutes): the first retry wait.";
      delayMax = progOpt countType "300" "\"Queue delay … to\" (minutes): the longest retry wait.";
      maxLifetime = progOpt countType "5760" "\"Maximum queue lifetime\" (minutes); then a bounce (DSN) to the sender.";
    };
    relay = {
      host = nullOpt types.str "\"Default relay\": smarthost for non-local mail (host name or IP); null = direct MX delivery.";
      port = progOpt portType "25" "Relay \"connection port\".";
      smtps = opt types.bool false "\"Use SMTPS\" to the smarthost (implicit TLS; otherwise STARTTLS when offered). Needs `relay.host`.";
      auth = {
        enable = opt types.bool false "\"Use SMTP authentication\" at the smarthost. Needs `relay.host`, `relay.auth.user` and `relay.auth.passwordFile`.";
        user = nullOpt types.str "SMTP authentication user name.";
        passwordFile = nullOpt absPath "File holding the smarthost password (readable by `icsmail`; never in the JSON).";
      };
      changeSender = {
        enable = opt types.bool false "\"Change sender email\" of relayed mail.";
        address = nullOpt types.str "\"Sender email\" used when `relay.changeSender.enable`.";
      };
    };

    # ---------------------------------------------------------------- policy
    lists = {
      whitelist = opt (types.listOf types.str) [ ] ''
        "Whitelist": IP addresses, CIDR networks, domains or mail server names (`*.example.com`),
        mailboxes. Always accepted, no greylisting or DNS checks, may relay.
      '';
      blacklist = opt (types.listOf types.str) [ ] "\"Blacklist\": the same forms; their mail is refused.";
    };
    storage = {
      path = opt absPath "/var/lib/icsmail/mail" ''
        "Drive for keeping mail": root of the Maildir++ store (`<path>/<domain>/<local part>/`).
        Created and made writable for the daemons when outside /var/lib/icsmail.
      '';
      defaultFolders = progOpt (types.listOf folderType)
        "[ Drafts (drafts) Sent (sent) Trash (trash) Junk (junk) ]"
        "\"On creating a mailbox automatically create next folders\", with SPECIAL-USE roles.";
    };
    antivirus = {
      clamav = {
        enable = opt types.bool false "Anti-virus \"Clamav\": scan mail with clamd.";
        socket = progOpt absPath "/run/clamav/clamd.ctl" "clamd's Unix socket.";
      };
      kaspersky = {
        enable = opt types.bool false "Anti-virus \"Kaspersky Antivirus\" over ICAP.";
        icapUrl = nullOpt (types.strMatching "icap://.*") "`icap://host:port/service` of the Kaspersky ICAP server.";
      };
    };
    dkim = {
      verify = opt types.bool false "\"Verify DKIM-signature\" of incoming mail.";
      sign = opt types.bool false "\"Add DKIM-signature\" to outgoing mail.";
      selector = progOpt types.str "\"default\"" "DKIM \"Selector\" of this server.";
      keyDirectory = progOpt absPath "/var/lib/icsmail/dkim" "Directory of `<domain>.<selector>.key` private keys (PEM).";
    };
    dlp = {
      enable = opt types.bool false "\"Use DLP\": pass mail to a DLP system over ICAP.";
      icapUrl = nullOpt (types.strMatching "icap://.*") "`icap://` URL of the DLP system.";
    };
    recodeSubjectUtf8 = opt types.bool false "\"Recode subject to UTF-8\" for outgoing mail.";
    spam = {
      dnsbl = opt (types.listOf types.str) [ ] "\"DNSBL blacklists\": zones queried with the client's address.";
      greylist = {
        enable = opt types.bool false "\"Use grey lists\".";
        ignoreSeconds = progOpt u32Type "60" "\"Ignore resending\" sooner than this many seconds.";
        awaitHours = progOpt countType "4" "\"Await resending\" for this many hours.";
        keepDays = progOpt countType "36" "\"Keep in white list\" this many days.";
      };
    };
    addressBook = {
      enable = opt types.bool false "Run the read-only LDAP address book. Needs a `baseDn`.";
      port = opt portType 389 "\"The port on which LDAP is running\".";
      baseDn = opt types.str "" "\"Base DN\": one or more search bases separated by `;`.";
      publishToClients = progOpt types.bool "true" "\"Use ICS Address Book\": publish the book to mail clients.";
    };
    dns.nameservers = opt (types.listOf types.str) [ ] ''
      Resolvers as `ip` or `ip:port` (`[::1]:53`); empty = /etc/resolv.conf.
    '';
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.tls.mode == "none" || (cfg.smtp.certificate != null && cfg.access.certificate != null);
          message = "services.icsMail.tls.mode = \"${cfg.tls.mode}\" needs certificates: set services.icsMail.smtp.certificate and services.icsMail.access.certificate (or tls.mode = \"none\").";
        }
        {
          assertion = cfg.smtp.smtps.enable -> cfg.smtp.certificate != null;
          message = "services.icsMail.smtp.smtps.enable needs services.icsMail.smtp.certificate (SMTPS has no plain-text fallback).";
        }
        {
          assertion = cfg.access.implicitTls.enable -> cfg.access.certificate != null;
          message = "services.icsMail.access.implicitTls.enable (IMAPS/POP3S) needs services.icsMail.access.certificate.";
        }
        {
          assertion = cfg.relay.auth.enable -> cfg.relay.auth.passwordFile != null;
          message = "services.icsMail.relay.auth.enable needs services.icsMail.relay.auth.passwordFile (the password is never put in the configuration).";
        }
        {
          assertion = cfg.relay.auth.enable -> (cfg.relay.auth.user != null && cfg.relay.auth.user != "");
          message = "services.icsMail.relay.auth.enable needs services.icsMail.relay.auth.user.";
        }
        {
          assertion = (cfg.relay.auth.enable || cfg.relay.smtps) -> cfg.relay.host != null;
          message = "services.icsMail.relay.auth.enable and relay.smtps need services.icsMail.relay.host (the smarthost).";
        }
        {
          assertion = cfg.relay.changeSender.enable -> cfg.relay.changeSender.address != null;
          message = "services.icsMail.relay.changeSender.enable needs services.icsMail.relay.changeSender.address.";
        }
        {
          assertion = cfg.antivirus.kaspersky.enable -> cfg.antivirus.kaspersky.icapUrl != null;
          message = "services.icsMail.antivirus.kaspersky.enable needs services.icsMail.antivirus.kaspersky.icapUrl (icap://…).";
        }
        {
          assertion = cfg.dlp.enable -> cfg.dlp.icapUrl != null;
          message = "services.icsMail.dlp.enable needs services.icsMail.dlp.icapUrl (icap://…).";
        }
        {
          assertion = cfg.addressBook.enable -> baseDns != [ ];
          message = "services.icsMail.addressBook.enable needs services.icsMail.addressBook.baseDn (e.g. \"dc=example,dc=org\").";
        }
        {
          assertion = cfg.queue.delayMin == null || cfg.queue.delayMax == null || cfg.queue.delayMin <= cfg.queue.delayMax;
          message = "services.icsMail.queue.delayMin (${toString cfg.queue.delayMin}) must not be greater than queue.delayMax (${toString cfg.queue.delayMax}).";
        }
        {
          assertion = cfg.queue.maxLifetime == null || cfg.queue.delayMin == null || cfg.queue.maxLifetime >= cfg.queue.delayMin;
          message = "services.icsMail.queue.maxLifetime (${toString cfg.queue.maxLifetime}) must be at least queue.delayMin (${toString cfg.queue.delayMin}), or no retry could ever happen.";
        }
        {
          assertion = cfg.spam.greylist.ignoreSeconds == null || cfg.spam.greylist.awaitHours == null
            || cfg.spam.greylist.ignoreSeconds < cfg.spam.greylist.awaitHours * 3600;
          message = "services.icsMail.spam.greylist.ignoreSeconds (${toString cfg.spam.greylist.ignoreSeconds} s) must be shorter than greylist.awaitHours (${toString cfg.spam.greylist.awaitHours} h): no retry could pass.";
        }
        {
          assertion = cfg.defaultAuthDomain == null || elem (lib.toLower cfg.defaultAuthDomain) lowerDomains;
          message = "services.icsMail.defaultAuthDomain (${toString cfg.defaultAuthDomain}) must be one of services.icsMail.domains.";
        }
        {
          assertion = cfg.webmail.enable -> localReachable cfg.access.interfaces && localReachable cfg.smtp.interfaces;
          message = "services.icsMail.webmail.enable: Roundcube talks to IMAP and submission on localhost; add \"lo\" (or 127.0.0.1) to services.icsMail.access.interfaces and smtp.interfaces.";
        }
      ]
      ++ map (message: { assertion = false; inherit message; }) (accountErrors ++ portClashes);

      users.users.icsmail = {
        isSystemUser = true;
        group = "icsmail";
        home = cfg.stateDir;
        description = "ics-mail daemons";
      };
      users.groups.icsmail = { };

      environment.etc."icsmail/config.json".text = builtins.toJSON configJson;
      environment.systemPackages = [ cfg.package ];

      # The unit files of units/, with this package's binary (overridden below as well).
      systemd.packages = [
        (pkgs.runCommand "icsmail-units" { } ''
          mkdir -p $out/lib/systemd/system
          cp ${../units}/*.service ${../units}/*.socket ${../units}/*.timer $out/lib/systemd/system/
          sed -i -e 's|/usr/bin/icsmail|${icsmail}|g' -e 's|/bin/kill|${pkgs.coreutils}/bin/kill|g' \
            $out/lib/systemd/system/*
        '')
      ];

      systemd.tmpfiles.rules = map (d: "d ${d} 0750 icsmail icsmail - -") extraDirs;

      systemd.services = listToAttrs (map (daemon: nameValuePair "icsmail-${daemon}" {
        # ExecStart= from this module's package, whatever the unit file says
        serviceConfig = {
          ExecStart = [ "" "${icsmail} ${daemon} --config ${configPath}" ];
          ExecReload = [ "" "${pkgs.coreutils}/bin/kill -HUP $MAINPID" ];
          ReadWritePaths = extraDirs;
        };
        restartTriggers = [ config.environment.etc."icsmail/config.json".source ];
      }) [ "smtpd" "pop3d" "imapd" ])
      // {
        icsmail-queue = {
          serviceConfig = {
            ExecStart = [ "" "${icsmail} queue run --config ${configPath}" ];
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
      services.roundcube = {
        enable = true;
        hostName = mkDefault cfg.webmail.hostName;
        # Roundcube adds 37 % (base64) to this many MiB: keep the result within maxMessageSize
        maxAttachmentSize = mkDefault (lib.max 1 ((cfg.smtp.maxMessageSize * 100) / (137 * 1048576)));
        extraConfig =
          let
            tlsPrefix = optionalString (cfg.tls.mode == "required") "tls://";
            submission = if cfg.smtp.submissionPort != null then cfg.smtp.submissionPort else cfg.smtp.port;
            ldap = optionalString (cfg.addressBook.enable && cfg.webmail.addressBook) (concatStringsSep "\n" (lib.imap0 (i: dn: ''
              $config['ldap_public']['icsmail${toString i}'] = [
                'name' => ${phpString "Address book (${dn})"},
                'hosts' => ['localhost'],
                'port' => ${toString cfg.addressBook.port},
                'use_tls' => false,
                'ldap_version' => 3,
                'user_specific' => false,
                'base_dn' => ${phpString dn},
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
          ''
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
    })
  ]);
}
