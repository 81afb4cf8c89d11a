//! The `icsmail` command line (DESIGN.md §2): one binary, one subcommand per role.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, Daemons};
use crate::auth::hash_argon2id;
use crate::config::layers::Source;
use crate::settings;

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
    /// The administration service on the system bus (`org.icsmail.Mail1`, docs/dbus.md);
    /// started by bus activation.
    Admind {
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
    let file = |path: PathBuf| Source::File(path);
    let result = match cli.command {
        Command::CheckConfig { config, file_only } => return check_config(&config, file_only),
        Command::HashPassword => hash_password(),
        Command::Queue { command } => crate::queue::cli::run(command),
        Command::Smtpd { config } => app::run(file(config), Daemons::Smtp),
        Command::Imapd { config } => app::run(file(config), Daemons::Imap),
        Command::Pop3d { config } => app::run(file(config), Daemons::Pop3),
        Command::Admind { config } => crate::admin::run(file(config)),
        Command::Serve { config } => match config {
            Some(path) => Ok(file(path)),
            None => crate::demo::default_source(),
        }
        .and_then(|source| app::run(source, Daemons::All)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("icsmail: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `check-config`: the file alone with `--static`; otherwise everything the daemons read at
/// start (the override layer, secret files, the host name, the certificates).
fn check_config(path: &Path, file_only: bool) -> ExitCode {
    let source = Source::File(path.to_path_buf());
    let result = if file_only {
        settings::check_static(&source).map(drop)
    } else {
        settings::check_machine(&source)
    };
    match result {
        Ok(()) => {
            let how = if file_only {
                " (static: the override layer, secret files, certificates and host name not checked)"
            } else {
                ""
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
