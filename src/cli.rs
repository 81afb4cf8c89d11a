//! The `icsmail` command line (DESIGN.md §2): one binary, one subcommand per role.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, Daemons};
use crate::auth::hash_argon2id;
use crate::config::{self, Config};

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
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
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
        Command::CheckConfig { config } => return check_config(&config),
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

fn check_config(path: &Path) -> ExitCode {
    match config::load_file(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
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
