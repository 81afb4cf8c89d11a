//! Assembling the daemons of one process from a validated configuration: shared accounts,
//! store, authenticator and TLS certificates, then the chosen protocol services.

use std::sync::Arc;

use anyhow::Context;
use tracing::info;

use crate::auth::{Authenticator, Directory};
use crate::config::Config;
use crate::daemon::{self, Service};
use crate::store::MailStore;
use crate::tls::{self, ReloadableCert};
use crate::{imap, pop3, smtp};

/// Which protocols this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemons {
    Smtp,
    Imap,
    Pop3,
    /// `icsmail serve`: everything.
    All,
}

impl Daemons {
    fn smtp(self) -> bool {
        matches!(self, Daemons::Smtp | Daemons::All)
    }

    fn pop3(self) -> bool {
        matches!(self, Daemons::Pop3 | Daemons::All)
    }

    fn imap(self) -> bool {
        matches!(self, Daemons::Imap | Daemons::All)
    }
}

/// Starts the chosen daemons and serves until SIGTERM.
pub fn run(config: Config, which: Daemons) -> anyhow::Result<()> {
    init_logging();
    return_big_allocations_to_the_system();
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
    let load_cert = |pair: &Option<_>, key| -> anyhow::Result<Option<Arc<ReloadableCert>>> {
        Ok(match pair {
            Some(pair) => Some(Arc::new(ReloadableCert::load(pair, key, provider.clone())?)),
            None => None,
        })
    };
    let smtp_cert = if which.smtp() {
        load_cert(&config.smtp.certificate, "smtp.certificate")?
    } else {
        None
    };
    let access_cert = if which.pop3() || which.imap() {
        load_cert(&config.access.certificate, "access.certificate")?
    } else {
        None
    };
    let smtp_tls = smtp_cert.clone().map(tls::acceptor).transpose()?;
    let access_tls = access_cert.clone().map(tls::acceptor).transpose()?;
    let certificates: Vec<Arc<ReloadableCert>> = smtp_cert.into_iter().chain(access_cert).collect();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let mut services: Vec<Service> = Vec::new();
        if which.smtp() {
            let ctx = Arc::new(smtp::session::SmtpContext::new(
                &config,
                directory.clone(),
                store.clone(),
                authenticator.clone(),
                smtp_tls,
            ));
            services.extend(smtp::server::services(&config, ctx)?);
        }
        if which.imap() {
            let ctx = Arc::new(imap::context::ImapContext::new(
                &config,
                authenticator.clone(),
                store.clone(),
                access_tls.clone(),
            ));
            services.extend(imap::server::services(&config, ctx)?);
        }
        if which.pop3() {
            let ctx = Arc::new(pop3::session::Pop3Context::new(
                &config,
                authenticator.clone(),
                store.clone(),
                access_tls,
            ));
            services.extend(pop3::server::services(&config, ctx)?);
        }
        info!(
            hostname = config.helo_name.as_deref().unwrap_or(""),
            "ics-mail starting"
        );
        daemon::run(services, certificates).await
    })
}

/// Large allocations (an argon2id verification takes 19 MiB; big messages) get their own
/// mappings, returned to the system when freed. glibc would otherwise raise its mmap threshold
/// after the first such free and keep later ones in per-thread arenas: a login burst left a
/// daemon hundreds of MiB larger for good.
fn return_big_allocations_to_the_system() {
    // SAFETY: mallopt only changes allocator tuning; called before the runtime starts threads.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Logs to stderr (the journal under systemd, which stamps lines itself); `RUST_LOG` filters.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second call (several roles in one process) keeps the first subscriber.
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
