{
  description = "ics-mail: a mail server appliance (SMTP, IMAP, POP3) for NixOS, in Rust";

  # Rust >= 1.95 (Cargo.toml rust-version): a current nixos-unstable.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      # The binary, plus units/ (store paths filled in) and the sysusers.d entry.
      packages = forAllSystems (system: pkgs: {
        default = pkgs.callPackage ./nixos-module/package.nix { };
        ics-mail = self.packages.${system}.default;
      } // lib.optionalAttrs (system == "x86_64-linux") {
        # bootable qcow2 of nixosConfigurations.appliance
        appliance-image = self.nixosConfigurations.appliance.config.system.build.applianceImage;
      });

      # services.icsMail, with this flake's build as the default package
      nixosModules.default = { pkgs, lib, ... }: {
        imports = [ ./nixos-module ];
        services.icsMail.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };

      nixosConfigurations.appliance = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [ self.nixosModules.default ./nixos-module/appliance.nix ];
      };

      # NixOS VM tests (need KVM to be quick): nix flake check, or
      # nix build .#checks.x86_64-linux.vm-mail
      checks = forAllSystems (system: pkgs:
        import ./nixos-module/tests {
          inherit pkgs;
          module = self.nixosModules.default;
          nixosLib = nixpkgs.lib.nixos;
        }
        // { package = self.packages.${system}.default; });

      formatter = forAllSystems (system: pkgs: pkgs.nixpkgs-fmt);
    };
}
