# For nixos-module/eval/check.sh: evaluates the module (enabled) with `extra` against the
# partial nixpkgs of ../shared/tools/nixos-eval and returns what the build-time check needs:
# the generated config.json text, the check's shell command with the two store paths it names
# (the package's icsmail and the unchecked JSON), and the module's failed assertions.
#   nix-instantiate --eval --strict --json nixos-module/eval/generated.nix \
#     --arg nixpkgs /tmp/nixos-eval/nixpkgs --arg extra ./some-settings.nix
{ nixpkgs, extra ? { } }:
let
  lib = import (nixpkgs + "/lib");
  pkgs = import (nixpkgs + "/pkgs-stub") { inherit lib; };
  eval = import (nixpkgs + "/nixos/lib/eval-config.nix") {
    inherit lib pkgs;
    system = null;
    modules = [
      { nixpkgs.hostPlatform = "x86_64-linux"; boot.isContainer = true; system.stateVersion = "24.05"; }
      ../default.nix
      { services.icsMail.enable = true; }
      extra
    ];
  };
  inherit (eval.config.services.icsMail) generated;
in
{
  inherit (generated) configText checkCommand icsmail uncheckedConfig;
  etcSource = toString eval.config.environment.etc."icsmail/config.json".source;
  configFile = toString generated.configFile;
  storageMove = {
    exec = eval.config.systemd.services.icsmail-storage-move.serviceConfig.ExecStart;
    inherit (eval.config.systemd.services.icsmail-storage-move) wantedBy;
    # a string or { text; deps; }, depending on the nixpkgs
    activation = let a = eval.config.system.activationScripts.icsmail-storage;
      in if builtins.isString a then a else a.text;
  };
  polkitRules = eval.config.security.polkit.extraConfig;
  # the admin service: its bus files' package (by name: the stub keeps no build script) and
  # the unit's command
  admin = {
    dbusPackages = map (p: p.name) eval.config.services.dbus.packages;
    exec = eval.config.systemd.services.icsmail-admin.serviceConfig.ExecStart;
    groups = builtins.attrNames eval.config.users.groups;
  };
  # the Roundcube of webmail.enable (null when off): its config.inc.php, the PHP-FPM pool's
  # php.ini additions and the nginx virtual host's TLS
  webmail = if !eval.config.services.roundcube.enable then null else
    let
      vhost = eval.config.services.nginx.virtualHosts.${eval.config.services.roundcube.hostName};
      # sslCertificate(Key) have no default: null where the module leaves them unset
      maybe = v: let r = builtins.tryEval v; in if r.success then r.value else null;
    in {
      configPhp = eval.config.environment.etc."roundcube/config.inc.php".text;
      phpOptions = eval.config.services.phpfpm.pools.roundcube.phpOptions;
      tls = {
        inherit (vhost) forceSSL enableACME;
        sslCertificate = maybe vhost.sslCertificate;
        sslCertificateKey = maybe vhost.sslCertificateKey;
      };
    };
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) eval.config.assertions);
}
