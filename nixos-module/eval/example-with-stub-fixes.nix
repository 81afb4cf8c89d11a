# For ../shared/tools/nixos-eval only (stub package set): example.nix plus what the stub
# packages lack. Not for real systems.
#   EXTRA_CONFIG=nixos-module/eval/example-with-stub-fixes.nix \
#     ../shared/tools/nixos-eval/eval-module.sh nixos-module
{ lib, pkgs, ... }:

{
  imports = [ ../example.nix ];
  # nginx (enabled by Roundcube through webmail.enable) reads `package.modules`, which the
  # stub's fake nginx has not got.
  services.nginx.package =
    let nginx = pkgs.nginx // { modules = [ ]; override = _: nginx; }; in lib.mkForce nginx;
  # PostgreSQL (Roundcube's database) reads `package.psqlSchema`, `.withoutJIT`, …
  services.postgresql.package =
    let pg = pkgs.postgresql // {
      psqlSchema = "16"; version = "16.3"; jitSupport = false;
      withJIT = pg; withoutJIT = pg; withPackages = _: pg; override = _: pg;
    }; in lib.mkForce pg;
}
