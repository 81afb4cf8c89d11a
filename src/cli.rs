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
    /// The LDAP address book (LDAP with StartTLS, LDAPS), when `addressBook.enable`.
    Ldapd {
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
    /// Make a DKIM key for a domain of this server: written (mode 0600, never over an
    /// existing one) into `dkim.keyDirectory`, its DNS TXT record printed. The daemons read
    /// it at the next reload.
    DkimKeygen {
        #[arg(long)]
        config: PathBuf,
        /// One of the configuration's `domains`.
        #[arg(long)]
        domain: String,
        /// Default: `dkim.selector`. An Ed25519 key is published at `<selector>-ed25519`.
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
    },
    /// Move the mail to `storage.path` when the store in force is elsewhere (the setting
    /// changed), while the daemons keep running: copy passes, a short pause, the switch
    /// (docs/storage.md, "Moving the store"). Nothing to do when it is there already.
    StorageMove {
        #[arg(long)]
        config: PathBuf,
    },
    /// The outbound queue: `run` (one pass, what the timer starts), `flush`, `list`, `show`,
    /// `delete`.
    Queue {
        #[command(subcommand)]
        command: crate::queue::cli::QueueCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyAlgorithm {
    /// RSA-2048 (rsa-sha256), what every verifier knows.
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463).
    Ed25519,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let file = |path: PathBuf| Source::File(path);
    let result = match cli.command {
        Command::CheckConfig { config, file_only } => return check_config(&config, file_only),
        Command::HashPassword => hash_password(),
        Command::DkimKeygen {
            config,
            domain,
            selector,
            algorithm,
        } => dkim_keygen(&config, &domain, selector, algorithm),
        Command::Queue { command } => crate::queue::cli::run(command),
        Command::StorageMove { config } => storage_move(&config),
        Command::Smtpd { config } => app::run(file(config), Daemons::Smtp),
        Command::Imapd { config } => app::run(file(config), Daemons::Imap),
        Command::Pop3d { config } => app::run(file(config), Daemons::Pop3),
        Command::Ldapd { config } => app::run(file(config), Daemons::Ldap),
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

/// `dkim-keygen`: the key into `dkim.keyDirectory`, the record on stdout.
fn dkim_keygen(
    path: &Path,
    domain: &str,
    selector: Option<String>,
    algorithm: KeyAlgorithm,
) -> anyhow::Result<()> {
    use crate::filter::{keygen, sign};
    let model = crate::config::layers::read(&Source::File(path.to_path_buf()))
        .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", path.display()))?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    anyhow::ensure!(
        model
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&domain)),
        "{domain} is not one of the domains of {} (only mail from those is signed)",
        path.display()
    );
    let selector = selector.unwrap_or_else(|| model.dkim.selector.clone());
    if let Err(why) =
        crate::config::syntax::dns_name(&selector, crate::config::syntax::Letters::Ascii)
    {
        anyhow::bail!("--selector {selector:?} {why}");
    }
    let algorithm = match algorithm {
        KeyAlgorithm::Rsa => sign::Algorithm::Rsa,
        KeyAlgorithm::Ed25519 => sign::Algorithm::Ed25519,
    };
    let dir = &model.dkim.key_directory;
    let file = sign::key_path(dir, &domain, &selector, algorithm);
    let (pem, public) = keygen::generate(algorithm)?;
    keygen::write_key(&file, &pem)?;
    let dns_selector = algorithm.dns_selector(&selector);
    println!(
        "{}",
        keygen::txt_record(&domain, &dns_selector, algorithm, &public)
    );
    eprintln!(
        "icsmail: wrote {}; publish the record above, then reload the daemons",
        file.display()
    );
    Ok(())
}

/// `storage-move`: the move to the configured `storage.path`, its progress in the log.
fn storage_move(config: &Path) -> anyhow::Result<()> {
    use crate::store::relocate::{self, MoveRequest, Observer};
    struct LogProgress(std::sync::Mutex<u64>);
    impl Observer for LogProgress {
        fn progress(&self, done: u64, total: u64) {
            let percent = done
                .saturating_mul(100)
                .checked_div(total)
                .unwrap_or(0)
                .min(99);
            let mut last = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if percent != *last {
                *last = percent;
                tracing::info!(percent, done, total, "storage move: copying");
            }
        }
        fn cancelled(&self) -> bool {
            false
        }
    }
    crate::logging::init();
    let settings = settings::Settings::from_file(config)?;
    let state_dir = &settings.queue.state_dir;
    let target = &std::path::absolute(&settings.storage.path)
        .with_context(|| format!("storage.path: {}", settings.storage.path.display()))?;
    crate::store::root::attach(state_dir, target)
        .with_context(|| format!("storage.path: opening the store {}", target.display()))?;
    let outcome = relocate::relocate(
        MoveRequest {
            state_dir,
            target,
            before_switch: &mut || Ok(()),
        },
        &LogProgress(std::sync::Mutex::new(0)),
    )?;
    tracing::info!(outcome = ?outcome, target = %target.display(), "storage move: done");
    Ok(())
}
