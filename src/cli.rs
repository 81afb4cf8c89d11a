//! The `icsmail` command line (DESIGN.md §2): one binary, one subcommand per role.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, Daemons};
use crate::auth::hash_argon2id;
use crate::config::{self, Config, ConfigErrors, Scope};
use crate::tls;

#[derive(Parser)]
#[command(
    name = "icsmail",
    version,
    about = "ics-mail: SMTP, IMAP and POP3 mail server appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every enabled service in one foreground process; without --config, a local demo setup.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The SMTP daemon (MX, submission, SMTPS).
    Smtpd {
        #[arg(long)]
        config: PathBuf,
    },
    /// The IMAP daemon (IMAP, IMAPS).
    Imapd {
        #[arg(long)]
        config: PathBuf,
    },
    /// The POP3 daemon (POP3, POP3S).
    Pop3d {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0, or one line per problem naming its key.
    ///
    /// By default everything the daemons will need is checked too: the password hash files are
    /// read, the certificates and keys loaded, the smarthost password file read, and an unset
    /// heloName is looked up.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
        /// Check only what the file itself says: read no secret file or certificate and do not
        /// look up the host name (for a build sandbox such as Nix's, which has none of them).
        #[arg(long = "static")]
        file_only: bool,
    },
    /// Read a password on stdin and print an argon2id hash for `hashedPassword`.
    HashPassword,
    /// The outbound queue: `run` (one pass, what the timer starts), `flush`, `list`, `show`,
    /// `delete`.
    Queue {
        #[command(subcommand)]
        command: crate::queue::cli::QueueCommand,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { config, file_only } => {
            let scope = if file_only {
                Scope::FileOnly
            } else {
                Scope::Machine
            };
            return check_config(&config, scope);
        }
        Command::HashPassword => hash_password(),
        Command::Queue { command } => crate::queue::cli::run(command),
        Command::Smtpd { config } => load(&config).and_then(|c| app::run(c, Daemons::Smtp)),
        Command::Imapd { config } => load(&config).and_then(|c| app::run(c, Daemons::Imap)),
        Command::Pop3d { config } => load(&config).and_then(|c| app::run(c, Daemons::Pop3)),
        Command::Serve { config } => match config {
            Some(path) => load(&path),
            None => crate::demo::default_config(),
        }
        .and_then(|c| app::run(c, Daemons::All)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("icsmail: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path, scope: Scope) -> ExitCode {
    let result = config::load_file_in(path, scope).and_then(|config| match scope {
        Scope::Machine => check_machine_files(&config),
        Scope::FileOnly => Ok(()),
    });
    match result {
        Ok(()) => {
            let how = match scope {
                Scope::Machine => "",
                Scope::FileOnly => {
                    " (static: secret files, certificates and host name not checked)"
                }
            };
            println!("{}: ok{how}", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// The files a valid configuration names that only the daemons read, checked the way they
/// read them: the certificates with their keys (as at start), the smarthost password (as the
/// queue runner does at every pass). The password hash files were read by validation already.
fn check_machine_files(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let provider = tls::provider(config.tls.dh_key_length);
    for (key, pair) in [
        ("smtp.certificate", &config.smtp.certificate),
        ("access.certificate", &config.access.certificate),
    ] {
        if let Some(pair) = pair {
            if let Err(err) = tls::load_certified_key(pair, key, &provider) {
                errors.push(err.to_string());
            }
        }
    }
    let auth = &config.relay.auth;
    if let (true, Some(file)) = (auth.enable, &auth.password_file) {
        match std::fs::read_to_string(file) {
            Ok(text) if text.lines().next().unwrap_or("").is_empty() => errors.push(format!(
                "relay.auth.passwordFile: {} has an empty first line (the password)",
                file.display()
            )),
            Ok(_) => {}
            Err(err) => errors.push(format!(
                "relay.auth.passwordFile: cannot read {}: {err}",
                file.display()
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn hash_password() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    anyhow::ensure!(!password.is_empty(), "empty password on stdin");
    println!("{}", hash_argon2id(password.as_bytes())?);
    Ok(())
}

/// Reads and validates a configuration file; the error lists every problem.
pub(crate) fn load(path: &Path) -> anyhow::Result<Config> {
    config::load_file(path).map_err(|errors| anyhow::anyhow!("{}:\n{errors}", path.display()))
}
