//! `icsmail queue run|list|show ID|flush|delete ID --config FILE`: the runner the systemd timer
//! starts, and queue inspection for operators.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use tracing::info;

use super::envelope::{format_time, Status};
use super::runner::{Runner, Selection};
use super::spool::Spool;
use crate::settings::Settings;
use crate::store::MailStore;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// One pass of the queue runner: try every message whose retry time has come.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Try every queued message now, whatever its retry time.
    Flush {
        #[arg(long)]
        config: PathBuf,
    },
    /// One line per queued message.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// The envelope of one message (JSON) and its header.
    Show {
        id: String,
        #[arg(long)]
        config: PathBuf,
    },
    /// Remove a message from the queue without telling its sender.
    Delete {
        id: String,
        #[arg(long)]
        config: PathBuf,
    },
}

pub fn run(command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Run { config } => pass(&config, Selection::Due),
        QueueCommand::Flush { config } => pass(&config, Selection::All),
        QueueCommand::List { config } => list(&Settings::from_file(&config)?),
        QueueCommand::Show { id, config } => show(&Settings::from_file(&config)?, &id),
        QueueCommand::Delete { id, config } => delete(&Settings::from_file(&config)?, &id),
    }
}

fn pass(path: &Path, selection: Selection) -> anyhow::Result<()> {
    let settings = Settings::from_file(path)?;
    crate::logging::init();
    let storage = &settings.storage;
    crate::store::root::attach(&settings.queue.state_dir, &storage.path)
        .with_context(|| format!("storage.path: opening the store {}", storage.path.display()))?;
    let store = Arc::new(MailStore::new(
        storage.root.clone(),
        storage.default_folders.clone(),
    ));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let runner = Runner::new(&settings, store);
        runner.spool().ensure_dirs()?;
        runner.run_pass(selection).await
    })?;
    info!(
        finished = report.finished,
        deferred = report.deferred,
        busy = report.busy,
        bounces = report.bounces,
        "queue pass done"
    );
    if let Err(err) = crate::stats::persist(&settings.queue.state_dir) {
        tracing::warn!("cannot write the statistics: {err}");
    }
    Ok(())
}

fn list(settings: &Settings) -> anyhow::Result<()> {
    let spool = Spool::new(&settings.queue.state_dir);
    let ids = spool.list()?;
    println!(
        "{:<24} {:>9} {:>8} {:<20} {:<20} SENDER -> RECIPIENTS (open)",
        "ID", "SIZE", "ATTEMPTS", "QUEUED", "NEXT ATTEMPT"
    );
    for id in &ids {
        match spool.load(id) {
            Ok(env) => {
                let open: Vec<&str> = env.open_recipients().map(|r| r.address.as_str()).collect();
                println!(
                    "{:<24} {:>9} {:>8} {:<20} {:<20} <{}> -> {}",
                    env.id,
                    env.size,
                    env.attempts,
                    format_time(env.created),
                    format_time(env.next_attempt),
                    env.sender,
                    open.join(", ")
                );
                if let Some(error) = &env.last_error {
                    println!("{:<24} last error: {error}", "");
                }
            }
            Err(err) => println!("{id:<24} (unreadable envelope: {err:#})"),
        }
    }
    println!("{} message(s) in the queue", ids.len());
    Ok(())
}

fn show(settings: &Settings, id: &str) -> anyhow::Result<()> {
    let spool = Spool::new(&settings.queue.state_dir);
    let env = spool.load(id)?;
    print!("{}", String::from_utf8_lossy(&env.to_json()));
    let path = spool.dir().join(format!("{id}.eml"));
    let message = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let end = crate::mailtext::header_end(&message);
    println!("--- header of {} ---", path.display());
    print!(
        "{}",
        String::from_utf8_lossy(&message[..end]).replace("\r\n", "\n")
    );
    let pending = env
        .recipients
        .iter()
        .filter(|r| r.status == Status::Pending)
        .count();
    println!(
        "--- {} recipient(s), {pending} not tried yet ---",
        env.recipients.len()
    );
    Ok(())
}

fn delete(settings: &Settings, id: &str) -> anyhow::Result<()> {
    crate::logging::init();
    let spool = Spool::new(&settings.queue.state_dir);
    let env = spool.load(id)?;
    let locked = spool
        .try_lock(id)?
        .with_context(|| format!("{id} is being delivered right now; try again"))?;
    spool.remove(locked)?;
    info!(
        id,
        from = env.sender,
        "deleted from the queue by the operator (no bounce)"
    );
    println!("{id} deleted");
    Ok(())
}
