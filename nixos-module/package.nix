# The ics-mail package: the `icsmail` binary, plus the systemd units of units/ (with their
# paths pointed into the store) and the sysusers.d entry, for use outside the NixOS module.
# Used by flake.nix (packages.<system>.default) and as the module's default `package`.
{ lib, rustPlatform, coreutils }:

let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../Cargo.toml ../Cargo.lock ../src ../units ];
  };
in
rustPlatform.buildRustPackage {
  pname = "ics-mail";
  version = (lib.importTOML ../Cargo.toml).package.version;
  inherit src;
  cargoLock.lockFile = ../Cargo.lock;

  # rustls' aws-lc-rs provider builds with the C compiler alone (no cmake, no Go) on x86_64
  # and aarch64 Linux. The unit tests run in the sandbox (they only use 127.0.0.1).
  postInstall = ''
    install -Dm0644 -t $out/lib/systemd/system units/*.service units/*.socket units/*.timer
    install -Dm0644 units/icsmail.sysusers.conf $out/lib/sysusers.d/icsmail.conf
    sed -i -e "s|/usr/bin/icsmail|$out/bin/icsmail|g" -e "s|/bin/kill|${coreutils}/bin/kill|g" \
      $out/lib/systemd/system/*
  '';

  meta = {
    description = "Mail server appliance: SMTP, IMAP, POP3, queue, policy, LDAP address book";
    license = lib.licenses.mit;
    mainProgram = "icsmail";
    platforms = lib.platforms.linux;
  };
}
