//! The `icsmail` command line (DESIGN.md §2): one binary, one subcommand per role.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::info;

use crate::auth::{hash_argon2id, Authenticator, Directory};
use crate::config::{self, Config};
use crate::daemon;
use crate::smtp;
use crate::store::MailStore;
use crate::tls::{self, ReloadableCert};

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
    /// The SMTP daemon (inbound MX).
    Smtpd {
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
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { config } => return check_config(&config),
        Command::HashPassword => hash_password(),
        Command::Smtpd { config } => load(&config).and_then(run_daemons),
        Command::Serve { config } => match config {
            Some(path) => load(&path).and_then(run_daemons),
            None => crate::demo::default_config().and_then(run_daemons),
        },
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

fn load(path: &Path) -> anyhow::Result<Config> {
    config::load_file(path).map_err(|errors| anyhow::anyhow!("{}:\n{errors}", path.display()))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // The journal stamps lines itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Starts the daemons of this build (SMTP so far) and serves until SIGTERM.
fn run_daemons(config: Config) -> anyhow::Result<()> {
    init_logging();
    let directory =
        Arc::new(Directory::from_config(&config).map_err(|errors| anyhow::anyhow!("{errors}"))?);
    let store = Arc::new(MailStore::new(
        config.storage.path.clone(),
        config.storage.default_folders.clone(),
    ));
    for account in directory.accounts() {
        store.ensure_account(&account.address).with_context(|| {
            format!("storage.path: creating the mailbox of {}", account.address)
        })?;
    }
    let authenticator = Arc::new(Authenticator::new(
        directory.clone(),
        config.default_auth_domain.clone(),
    )?);
    let provider = Arc::new(tls::provider(config.tls.dh_key_length));
    let smtp_cert = match &config.smtp.certificate {
        Some(pair) => Some(Arc::new(ReloadableCert::load(
            pair,
            "smtp.certificate",
            provider,
        )?)),
        None => None,
    };
    let smtp_tls = smtp_cert.clone().map(tls::acceptor).transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let ctx = Arc::new(smtp::session::SmtpContext::new(
            &config,
            directory,
            store,
            authenticator,
            smtp_tls,
        ));
        let services = smtp::server::services(&config, ctx)?;
        info!(
            hostname = config.helo_name.as_deref().unwrap_or(""),
            "ics-mail starting"
        );
        daemon::run(services, smtp_cert.into_iter().collect()).await
    })
}
