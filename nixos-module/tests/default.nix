# NixOS VM tests of the module (flake.nix `checks`), run with `nix flake check` or
# `nix build .#checks.x86_64-linux.<name>`. Every test boots real VMs: a server with
# services.icsMail and clients that talk to it with Python's smtplib/imaplib/poplib
# (tests/mailtest.py) and OpenLDAP's ldapsearch over the test network.
{ pkgs, module, nixosLib ? pkgs.lib.nixos or null }:

let
  inherit (pkgs) lib;

  # pkgs.testers.runNixOSTest; the same through lib.nixos.runTest where pkgs has no testers
  # (the partial nixpkgs of ../shared/tools/nixos-eval evaluates the tests that way)
  runNixOSTest = pkgs.testers.runNixOSTest or (test: nixosLib.runTest {
    imports = [ test ];
    hostPkgs = pkgs;
    node.pkgs = pkgs;
  });

  mailtest = ./mailtest.py;

  # test-only certificate and password hash, made at build time (the key and the hash are in
  # the store: acceptable for a throwaway test VM, never for a real server). The module refuses
  # secret options that name a store path, so the server gets copies outside the store below.
  cert = pkgs.runCommand "icsmail-test-cert" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir $out
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
      -subj /CN=server -addext subjectAltName=DNS:server \
      -keyout $out/key.pem -out $out/cert.pem
  '';

  # the server: one domain, alice, certificates; `extra` adds the test's own settings
  server = extra: { config, ... }: {
    imports = [ module ];
    services.icsMail = lib.mkMerge [
      {
        enable = true;
        openFirewall = true;
        domains = [ "example.test" ];
        heloName = "server";
        accounts."alice@example.test".hashedPasswordFile = "/etc/icsmail-test/alice.hash";
        smtp.certificate = { certFile = "${cert}/cert.pem"; keyFile = "/etc/icsmail-test/key.pem"; };
        access.certificate = { certFile = "${cert}/cert.pem"; keyFile = "/etc/icsmail-test/key.pem"; };
      }
      extra
    ];
    # copies (not store symlinks), readable by the icsmail group only
    environment.etc."icsmail-test/key.pem" = { source = "${cert}/key.pem"; mode = "0640"; group = "icsmail"; };
    environment.etc."icsmail-test/alice.hash" = {
      source = aliceHash config.services.icsMail.package;
      mode = "0640";
      group = "icsmail";
    };
    environment.systemPackages = [ pkgs.iproute2 pkgs.procps ];
  };

  aliceHash = package: pkgs.runCommand "icsmail-test-alice.hash" { } ''
    printf %s alice-secret | ${package}/bin/icsmail hash-password > $out
  '';

  client = { ... }: {
    environment.systemPackages = [ pkgs.python3 pkgs.netcat-openbsd ];
    environment.etc."icsmail-test/cert.pem".source = "${cert}/cert.pem";
  };

  mt = "python3 ${mailtest}";
in
{
  # SMTP in (MX, submission, SMTPS), IMAP/IMAPS/POP3/POP3S back out, socket activation,
  # sd_notify readiness, the dedicated user, the firewall and the queue timer.
  vm-mail = runNixOSTest {
    name = "icsmail-mail";
    nodes.server = server {
      tls.mode = "optional";
      smtp.smtps.enable = true;
      access.implicitTls.enable = true;
      queue.interval = 1;
      addressBook = { enable = true; baseDn = "dc=example,dc=test"; };
    };
    nodes.client = { ... }: {
      imports = [ client ];
      environment.systemPackages = [ pkgs.openldap ];
    };
    testScript = ''
      start_all()
      server.wait_for_unit("sockets.target")
      server.wait_for_unit("timers.target")

      with subtest("sockets listen while the daemons are inactive"):
          server.succeed("systemctl is-active icsmail-smtp.socket icsmail-submission.socket icsmail-smtps.socket "
                         "icsmail-imap.socket icsmail-imaps.socket icsmail-pop3.socket icsmail-pop3s.socket "
                         "icsmail-ldap.socket icsmail-ldaps.socket")
          for svc in ["icsmail-smtpd", "icsmail-imapd", "icsmail-pop3d", "icsmail-ldapd"]:
              server.succeed(f"test $(systemctl is-active {svc}.service) = inactive")
          server.succeed("ss -Hltnp 'sport = :25' | grep -q systemd")

      client.wait_for_unit("multi-user.target")

      with subtest("the first connection activates smtpd, which delivers"):
          client.succeed("${mt} send server 25 plain")
          server.succeed("systemctl status icsmail-smtpd.service | grep -q 'active (running)'")
          server.succeed("test -n \"$(systemctl show -p StatusText --value icsmail-smtpd.service)\"")
          server.succeed("test $(ps -o user= -p $(systemctl show -p MainPID --value icsmail-smtpd.service)) = icsmail")
          server.succeed("ss -Hltnp 'sport = :25' | grep -q icsmail")

      with subtest("submission with STARTTLS and SMTPS, both with AUTH"):
          client.succeed("${mt} send server 587 starttls")
          client.succeed("${mt} send server 465 smtps")

      with subtest("IMAP, IMAPS, POP3, POP3S read the mail back"):
          client.succeed("${mt} count server 143 imap 3")
          client.succeed("${mt} count server 143 imap-starttls 3")
          client.succeed("${mt} count server 993 imaps 3")
          client.succeed("${mt} count server 110 pop3 3")
          client.succeed("${mt} count server 110 pop3-stls 3")
          client.succeed("${mt} count server 995 pop3s 3")
          for svc in ["icsmail-imapd", "icsmail-pop3d"]:
              server.succeed(f"systemctl status {svc}.service | grep -q 'active (running)'")
              server.succeed(f"test $(ps -o user= -p $(systemctl show -p MainPID --value {svc}.service)) = icsmail")

      with subtest("the LDAP address book: StartTLS and LDAPS with the account, activated by the first search"):
          ldap = "LDAPTLS_CACERT=/etc/icsmail-test/cert.pem ldapsearch -x -LLL -D alice@example.test -w alice-secret"
          out = client.succeed(f"{ldap} -ZZ -H ldap://server -b dc=example,dc=test '(mail=ali*)' mail")
          assert "dn: uid=alice@example.test,dc=example,dc=test" in out, out
          out = client.succeed(f"{ldap} -H ldaps://server -b dc=example,dc=test '(objectClass=inetOrgPerson)' uid")
          assert "uid: alice@example.test" in out, out
          server.succeed("systemctl status icsmail-ldapd.service | grep -q 'active (running)'")
          server.succeed("test $(ps -o user= -p $(systemctl show -p MainPID --value icsmail-ldapd.service)) = icsmail")
          # anonymous from the network: no entries (only the webmail, anonymous from the host, reads them)
          client.fail("ldapsearch -x -H ldap://server -b dc=example,dc=test '(mail=*)'")

      with subtest("reload (SIGHUP) keeps the daemon, stop leaves the socket"):
          pid = server.succeed("systemctl show -p MainPID --value icsmail-smtpd.service").strip()
          server.succeed("systemctl reload icsmail-smtpd.service")
          server.succeed(f"test $(systemctl show -p MainPID --value icsmail-smtpd.service) = {pid}")
          server.succeed("systemctl stop icsmail-smtpd.service")
          server.succeed("test $(systemctl show -p Result --value icsmail-smtpd.service) = success")
          server.succeed("systemctl is-active icsmail-smtp.socket")
          client.succeed("${mt} send server 25 plain")
          server.succeed("systemctl is-active icsmail-smtpd.service")

      with subtest("firewall: exactly the enabled ports"):
          for port in [25, 587, 465, 143, 993, 110, 995, 389, 636]:
              client.succeed(f"nc -z -w 5 server {port}")
          server.succeed("systemd-run --unit=probe-listener ${pkgs.python3}/bin/python3 -m http.server 8080")
          server.wait_for_open_port(8080)
          client.fail("nc -z -w 5 server 8080")

      with subtest("queue timer: listed, fires every queue.interval (1 minute), the run succeeds"):
          server.succeed("systemctl list-timers --all | grep -q icsmail-queue.timer")
          server.succeed("systemctl cat icsmail-queue.timer | grep -q 'OnCalendar=\\*:0/1'")
          server.wait_until_succeeds(
              "test $(systemctl show -p ExecMainStartTimestampMonotonic --value icsmail-queue.service) -gt 0",
              timeout=180)
          server.wait_until_succeeds("test $(systemctl show -p Result --value icsmail-queue.service) = success")
          server.succeed("runuser -u icsmail -- icsmail check-config --config /etc/icsmail/config.json")
    '';
  };

  # tls.mode = "required": logins only inside TLS, on every protocol
  vm-tls-required = runNixOSTest {
    name = "icsmail-tls-required";
    nodes.server = server { tls.mode = "required"; };
    nodes.client = client;
    testScript = ''
      start_all()
      server.wait_for_unit("sockets.target")
      client.wait_for_unit("multi-user.target")
      client.succeed("${mt} tls-required server")
    '';
  };

  # tls.mode = "none": no STARTTLS anywhere, plain logins
  vm-tls-none = runNixOSTest {
    name = "icsmail-tls-none";
    nodes.server = server { tls.mode = "none"; };
    nodes.client = client;
    testScript = ''
      start_all()
      server.wait_for_unit("sockets.target")
      client.wait_for_unit("multi-user.target")
      client.succeed("${mt} tls-none server")
      client.succeed("${mt} send server 25 plain")
      client.succeed("${mt} count server 143 imap 1")
    '';
  };

  # smtp.interfaces by name (BindToDevice=, per-interface firewall), access.interfaces by
  # address (ListenStream=ADDR:PORT): two networks, each client sees only its services.
  vm-interfaces = runNixOSTest ({ nodes, ... }: {
    name = "icsmail-interfaces";
    nodes.server = { ... }: {
      imports = [
        (server {
          smtp.interfaces = [ "eth1" ];
          access.interfaces = [ "192.168.2.1" ];
        })
      ];
      virtualisation.vlans = [ 1 2 ];
      networking.interfaces.eth2.ipv4.addresses = lib.mkForce [ { address = "192.168.2.1"; prefixLength = 24; } ];
    };
    nodes.client1 = { ... }: { imports = [ client ]; virtualisation.vlans = [ 1 ]; };
    nodes.client2 = { ... }: { imports = [ client ]; virtualisation.vlans = [ 2 ]; };
    testScript = ''
      start_all()
      server.wait_for_unit("sockets.target")
      server.succeed("systemctl cat icsmail-smtp.socket | grep -q BindToDevice=eth1")
      server.succeed("systemctl cat icsmail-imap.socket | grep -q 'ListenStream=192.168.2.1:143'")
      smtp_ip = "${nodes.server.networking.primaryIPAddress}"
      client1.wait_for_unit("multi-user.target")
      client2.wait_for_unit("multi-user.target")

      with subtest("network 1 (eth1): SMTP only"):
          client1.succeed(f"nc -z -w 5 {smtp_ip} 25")
          client1.succeed(f"nc -z -w 5 {smtp_ip} 587")
          client1.fail("nc -z -w 5 192.168.2.1 143")
          client1.fail(f"nc -z -w 5 {smtp_ip} 143")

      with subtest("network 2: IMAP/POP3 on 192.168.2.1 only"):
          client2.succeed("nc -z -w 5 192.168.2.1 143")
          client2.succeed("nc -z -w 5 192.168.2.1 110")
          client2.fail("nc -z -w 5 192.168.2.1 25")

      with subtest("mail in on network 1, read back on network 2"):
          client1.succeed(f"${mt} send {smtp_ip} 25 plain")
          client2.succeed("python3 -c 'import imaplib; i = imaplib.IMAP4(\"192.168.2.1\", 143); "
                          "i.login(\"alice@example.test\", \"alice-secret\"); "
                          "assert int(i.select(\"INBOX\")[1][0]) >= 1'")
    '';
  });
}
