# A full example: sets EVERY option of services.icsMail (docs/nixos.md). Evaluate it with
#   EXTRA_CONFIG=nixos-module/example.nix ../shared/tools/nixos-eval/eval-module.sh nixos-module
# Secrets are paths to files that exist on the server, never Nix path literals.
{ lib, pkgs, ... }:

{
  services.icsMail = {
    # ---------------------------------------------------------------- Nix-only
    # mkDefault: nixos-eval sets enable itself (true, and false for comparison)
    enable = lib.mkDefault true;
    # the flake's nixosModules.default sets this to its own build; this is the module's default
    package = pkgs.callPackage ./package.nix { };
    openFirewall = true;
    webmail = {
      enable = true;
      hostName = "webmail.example.org";
      addressBook = true;
      # the virtual host's certificate from ACME (off: the mail services' certificate)
      acme = true;
    };

    # ---------------------------------------------------------------- domains and accounts
    domains = [ "example.org" "example.net" ];
    accounts = {
      "alice@example.org" = {
        hashedPasswordFile = "/var/lib/icsmail/secrets/alice.hash";
        aliases = [ "postmaster@example.org" "info@example.org" ];
        displayName = "Alice Example";
        quota = 10737418240; # 10 GiB
      };
      "bob@example.net" = {
        # an inline hash (mkpasswd -m sha-512) lands in the world-readable Nix store
        hashedPassword = "$6$exampleSalt0123$7DF042LlmY/fhfOJNYh4iU8and9f7Qr22vXwvbTWR7vr2TbD6PNODEgjEcIpGoHngQyseVK2VvponXtC.T2tv/";
        aliases = [ ];
        displayName = null;
        quota = null;
      };
    };
    heloName = "mail.example.org";
    defaultAuthDomain = "example.org";
    stateDir = "/var/lib/icsmail";

    # ---------------------------------------------------------------- SMTP
    smtp = {
      port = 25;
      # a name (per-interface socket with BindToDevice=, per-interface firewall rule),
      # an address (ListenStream=ADDR:PORT) and loopback (for the webmail)
      interfaces = [ "eth0" "192.0.2.10" "lo" ];
      submissionPort = 587;
      maxMessageSize = 52428800;
      smtputf8 = true;
      certificate = {
        certFile = "/var/lib/acme/mail.example.org/fullchain.pem";
        keyFile = "/var/lib/acme/mail.example.org/key.pem";
      };
      smtps = {
        enable = true;
        port = 465;
      };
      limits = {
        maxRecipients = 100;
        maxErrors = 10;
        commandTimeout = 300;
        dataTimeout = 600;
        connectionsPerIp = 20;
        maxConnections = 1000;
      };
    };

    # ---------------------------------------------------------------- IMAP / POP3
    access = {
      interfaces = [ "lo" "eth1" ];
      certificate = {
        certFile = "/var/lib/acme/mail.example.org/fullchain.pem";
        keyFile = "/var/lib/acme/mail.example.org/key.pem";
      };
      implicitTls.enable = true;
    };
    imap = {
      port = 143;
      imapsPort = 993;
    };
    pop3 = {
      port = 110;
      pop3sPort = 995;
    };

    # ---------------------------------------------------------------- encryption
    tls = {
      mode = "required";
      dhKeyLength = 3072;
    };

    # ---------------------------------------------------------------- sending
    rateLimit = {
      enable = true;
      messagesPerMinute = 30;
      exemptWhitelist = true;
    };
    queue = {
      interval = 45;
      delayMin = 180;
      delayMax = 300;
      maxLifetime = 5760;
    };
    relay = {
      host = "smtp.provider.example";
      port = 465;
      smtps = true;
      auth = {
        enable = true;
        user = "mailer@example.org";
        passwordFile = "/run/secrets/icsmail-relay-password";
      };
      changeSender = {
        enable = true;
        address = "mailer@example.org";
      };
    };

    # ---------------------------------------------------------------- policy
    lists = {
      whitelist = [ "192.0.2.0/24" "2001:db8::/32" "partner.example" "*.trusted.example" "boss@partner.example" ];
      blacklist = [ "198.51.100.7" "spam.example" ];
    };
    storage = {
      path = "/srv/mail";
      defaultFolders = [
        { name = "Drafts"; specialUse = "drafts"; }
        { name = "Sent"; specialUse = "sent"; }
        { name = "Trash"; specialUse = "trash"; }
        { name = "Junk"; specialUse = "junk"; }
        { name = "Archive"; specialUse = "archive"; }
        { name = "Archive.2024"; specialUse = null; }
      ];
    };
    # The address book is not implemented in this version: its switch is off (turning it on
    # fails the build); its other settings are set as they would be.
    antivirus = {
      clamav = {
        enable = true;
        socket = "/run/clamav/clamd.ctl";
      };
      kaspersky = {
        enable = true;
        icapUrl = "icap://127.0.0.1:1344/av/respmod";
      };
    };
    dkim = {
      verify = true;
      sign = true;
      selector = "mail2024";
      keyDirectory = "/var/lib/icsmail/dkim";
    };
    dlp = {
      enable = true;
      icapUrl = "icap://dlp.example.org:1344/dlp";
    };
    recodeSubjectUtf8 = true;
    spam = {
      dnsbl = [ "zen.spamhaus.org" "bl.spamcop.net" ];
      dnsblUnreachable = "tempfail";
      requireReverseDns = true;
      greylist = {
        enable = true;
        ignoreSeconds = 60;
        awaitHours = 4;
        keepDays = 36;
      };
    };
    addressBook = {
      enable = true;
      port = 389;
      ldapsPort = 636;
      baseDn = "dc=example,dc=org;dc=example,dc=net";
      publishToClients = true;
    };
    dns.nameservers = [ "127.0.0.1:53" "[::1]:53" ];
  };

  # Not part of services.icsMail: the certificate named above, from ACME (DNS challenge),
  # readable by the icsmail group and reloaded into the daemons (SIGHUP) on renewal; the
  # webmail's nginx virtual host uses ACME too.
  security.acme = {
    acceptTerms = true;
    defaults.email = "hostmaster@example.org";
    certs."mail.example.org" = {
      group = "icsmail";
      dnsProvider = "rfc2136";
      environmentFile = "/var/lib/secrets/acme-rfc2136.env";
      reloadServices = [ "icsmail-smtpd.service" "icsmail-imapd.service" "icsmail-pop3d.service" ];
    };
  };
}
