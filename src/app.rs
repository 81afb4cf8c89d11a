//! Assembling the daemons of one process: the live settings, the store, the authenticator, the
//! TLS certificates, the queue's delivery task, then the chosen protocol services; and what a
//! reload (SIGHUP) does.

use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::auth::Authenticator;
use crate::config::layers::Source;
use crate::daemon::{self, Service};
use crate::queue::{self, Outbound};
use crate::settings::{Live, Settings};
use crate::smtp::inbound::Inbound;
use crate::store::MailStore;
use crate::tls::{self, ReloadableCert};
use crate::{imap, ldap, pop3, smtp};

/// Which protocols this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemons {
    Smtp,
    Imap,
    Pop3,
    /// The LDAP address book.
    Ldap,
    /// `icsmail serve`: everything (the address book when `addressBook.enable`).
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

    fn ldap(self, settings: &Settings) -> bool {
        match self {
            Daemons::Ldap => true,
            Daemons::All => settings.model.address_book.enable,
            _ => false,
        }
    }
}

/// Starts the chosen daemons of `source`'s configuration and serves until SIGTERM; SIGHUP
/// reloads the settings and the certificates.
pub fn run(source: Source, which: Daemons) -> anyhow::Result<()> {
    crate::logging::init();
    return_big_allocations_to_the_system();
    let settings = Settings::load(&source)
        .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", source.name()))?;
    let live = Arc::new(Live::new(source, settings));
    let settings = live.load();
    let storage = &settings.storage;
    let store = Arc::new(MailStore::new(
        storage.root.clone(),
        storage.default_folders.clone(),
    ));
    ensure_state_dir(&settings.queue.state_dir)?;
    crate::store::root::attach(&settings.queue.state_dir, &storage.path)
        .with_context(|| format!("storage.path: opening the store {}", storage.path.display()))?;
    ensure_mailboxes(&store, &settings)?;
    if which == Daemons::Ldap && !settings.model.address_book.enable {
        anyhow::bail!("addressBook.enable is off: the address book has nothing to serve");
    }
    let authenticator = Arc::new(Authenticator::new(live.clone())?);
    let certificates = Certificates::load(&settings, which)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let mut services: Vec<Service> = Vec::new();
        let mut smtp_ctx = None;
        if which.smtp() {
            load_dkim_keys(&settings);
            let kicks = queue::start_delivery(live.clone(), store.clone());
            let inbound = Inbound {
                store: store.clone(),
                outbound: Outbound::new(&settings.queue.state_dir, Some(kicks)),
            };
            let ctx = Arc::new(smtp::session::SmtpContext::new(
                live.clone(),
                authenticator.clone(),
                certificates.smtp_acceptor()?,
                inbound,
            ));
            services.extend(smtp::server::services(&settings.model, ctx.clone())?);
            smtp_ctx = Some(ctx);
        }
        let access_tls = certificates.access_acceptor()?;
        if which.imap() {
            let ctx = Arc::new(imap::context::ImapContext::new(
                live.clone(),
                authenticator.clone(),
                store.clone(),
                access_tls.clone(),
            ));
            services.extend(imap::server::services(&settings.model, ctx)?);
        }
        if which.pop3() {
            let ctx = Arc::new(pop3::session::Pop3Context {
                live: live.clone(),
                authenticator: authenticator.clone(),
                store: store.clone(),
                tls: access_tls.clone(),
            });
            services.extend(pop3::server::services(&settings.model, ctx)?);
        }
        if which.ldap(&settings) {
            let ctx = Arc::new(ldap::session::LdapContext {
                live: live.clone(),
                authenticator: authenticator.clone(),
                tls: access_tls.clone(),
                books: Default::default(),
            });
            services.extend(ldap::server::services(&settings.model, ctx)?);
        }
        info!(hostname = settings.hostname, "ics-mail starting");
        let reload = move || {
            reload(&live, &store, smtp_ctx.as_deref());
            certificates.reload();
        };
        daemon::run(services, Box::new(reload), settings.queue.state_dir.clone()).await
    })
}

/// `stateDir` made now (the queue, the greylist store and the override file live there; under
/// systemd its `StateDirectory=` made it already), so a missing one is reported at start.
fn ensure_state_dir(state_dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("stateDir: creating {}", state_dir.display()))
}

/// The mailbox of every account, made now rather than at the first delivery.
fn ensure_mailboxes(store: &MailStore, settings: &Settings) -> anyhow::Result<()> {
    for account in settings.directory.accounts() {
        store.ensure_account(&account.address).with_context(|| {
            format!("storage.path: creating the mailbox of {}", account.address)
        })?;
    }
    Ok(())
}

/// The DKIM keys read now, so that their problems are in the log at start and reload rather
/// than at the first message.
fn load_dkim_keys(settings: &Settings) {
    if settings.model.dkim.sign {
        settings.dkim_keys();
    }
}

/// SIGHUP: the settings are read again and put in force for new sessions (on error the old
/// ones stay), and what holds settings outside the sessions takes the new values.
fn reload(live: &Live, store: &MailStore, smtp: Option<&smtp::session::SmtpContext>) {
    match live.reload() {
        Ok(reloaded) => {
            let settings = live.load();
            store.set_default_folders(settings.storage.default_folders.clone());
            if let Ok(Some(in_force)) = crate::store::root::in_force(&settings.queue.state_dir) {
                crate::store::root::note_pending_move(&in_force, &settings.storage.path);
            }
            if let Err(err) = ensure_mailboxes(store, &settings) {
                warn!("after the reload: {err:#}");
            }
            if let Some(smtp) = smtp {
                smtp.apply(&settings);
                load_dkim_keys(&settings);
            }
            info!(source = live.source().name(), "settings reloaded");
            for key in reloaded.restart_needed {
                warn!(
                    key,
                    "this setting changed: it takes effect at the next restart"
                );
            }
        }
        Err(errors) => warn!(
            source = live.source().name(),
            "reload refused, the settings stay as they were:\n{errors}"
        ),
    }
}

/// The certificates of the daemons of this process, reloadable in place.
struct Certificates {
    smtp: Option<Arc<ReloadableCert>>,
    access: Option<Arc<ReloadableCert>>,
}

impl Certificates {
    fn load(settings: &Settings, which: Daemons) -> anyhow::Result<Certificates> {
        let provider = Arc::new(tls::provider(settings.model.tls.dh_key_length));
        let load = |pair: &Option<_>, key| -> anyhow::Result<Option<Arc<ReloadableCert>>> {
            Ok(match pair {
                Some(pair) => Some(Arc::new(ReloadableCert::load(pair, key, provider.clone())?)),
                None => None,
            })
        };
        Ok(Certificates {
            smtp: match which.smtp() {
                true => load(&settings.smtp.certificate, "smtp.certificate")?,
                false => None,
            },
            access: match which.pop3() || which.imap() || which.ldap(settings) {
                true => load(&settings.access.certificate, "access.certificate")?,
                false => None,
            },
        })
    }

    fn smtp_acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        Ok(self.smtp.clone().map(tls::acceptor).transpose()?)
    }

    fn access_acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        Ok(self.access.clone().map(tls::acceptor).transpose()?)
    }

    /// Re-reads the certificate files (sessions in progress keep theirs).
    fn reload(&self) {
        for cert in self.smtp.iter().chain(&self.access) {
            let (cert_file, _) = cert.files();
            match cert.reload() {
                Ok(()) => info!(file = %cert_file.display(), "certificate reloaded"),
                Err(err) => warn!("certificate reload failed, keeping the old one: {err}"),
            }
        }
    }
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
