# The ics-mail appliance: a bootable NixOS VM (flake.nix: nixosConfigurations.appliance, image
# packages.x86_64-linux.appliance-image, a qcow2 disk with GRUB). On first boot it makes a
# self-signed certificate and a random password for admin@appliance.test and shows where they
# are at the console. Boot it with e.g.
#   qemu-system-x86_64 -m 1024 -drive file=nixos.qcow2,if=virtio \
#     -nic user,hostfwd=tcp::2525-:25,hostfwd=tcp::2587-:587,hostfwd=tcp::2993-:993,hostfwd=tcp::2995-:995
{ config, lib, pkgs, modulesPath, ... }:

let
  cfg = config.services.icsMail;
  setupDir = "/var/lib/icsmail-appliance";
  domain = "appliance.test";
  admin = "admin@${domain}";
in
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  system.stateVersion = "24.11";
  networking.hostName = "mail";
  networking.domain = domain;

  boot.loader.grub.device = "/dev/vda";
  boot.growPartition = true;
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };

  services.icsMail = {
    enable = true;
    openFirewall = true;
    domains = [ domain ];
    heloName = "mail.${domain}";
    defaultAuthDomain = domain;
    accounts.${admin} = {
      hashedPasswordFile = "${setupDir}/admin.hash";
      aliases = [ "postmaster@${domain}" ];
      displayName = "Appliance administrator";
    };
    tls.mode = "optional";
    smtp.certificate = { certFile = "${setupDir}/cert.pem"; keyFile = "${setupDir}/key.pem"; };
    access.certificate = { certFile = "${setupDir}/cert.pem"; keyFile = "${setupDir}/key.pem"; };
    smtp.smtps.enable = true;
    access.implicitTls.enable = true;
    addressBook = { enable = true; baseDn = "dc=appliance,dc=test"; };
  };

  # First boot: certificate and admin password, before any daemon can start.
  systemd.services.icsmail-appliance-setup = {
    description = "ics-mail appliance first-boot setup (certificate, admin password)";
    wantedBy = [ "multi-user.target" "icsmail-smtpd.service" "icsmail-imapd.service" "icsmail-pop3d.service" "icsmail-ldapd.service" ];
    before = [ "icsmail-smtpd.service" "icsmail-imapd.service" "icsmail-pop3d.service" "icsmail-ldapd.service" "icsmail-queue.service" ];
    path = [ pkgs.openssl pkgs.coreutils cfg.package ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      UMask = "0077";
    };
    script = ''
      install -d -m 0750 -o root -g icsmail ${setupDir}
      cd ${setupDir}
      if [ ! -s key.pem ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
          -subj "/CN=${cfg.heloName}" -addext "subjectAltName=DNS:${cfg.heloName}" \
          -keyout key.pem -out cert.pem
      fi
      if [ ! -s admin.hash ]; then
        password=$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 16)
        printf '%s' "$password" | icsmail hash-password > admin.hash
        printf '%s\n' "$password" > admin-password
      fi
      chgrp icsmail key.pem cert.pem admin.hash
      chmod 0640 key.pem admin.hash
      chmod 0644 cert.pem
      chmod 0600 admin-password
    '';
  };

  # A demo appliance: root is logged in on the (virtual) console, nothing else; there is no
  # SSH and no root password. Change this before exposing a real machine.
  services.getty.autologinUser = "root";
  services.getty.helpLine = ''

    ics-mail appliance: mail for @${domain}; user ${admin}, its password is in
    ${setupDir}/admin-password. SMTP 25, submission 587, SMTPS 465, IMAP 143/993, POP3 110/995.
  '';
  environment.systemPackages = [ pkgs.swaks ];

  # The disk image (qcow2, legacy BIOS partition table with GRUB).
  system.build.applianceImage = import (modulesPath + "/../lib/make-disk-image.nix") {
    inherit config lib pkgs;
    name = "icsmail-appliance";
    format = "qcow2";
    partitionTableType = "legacy";
    diskSize = "auto";
    additionalSpace = "2048M";
  };
}
