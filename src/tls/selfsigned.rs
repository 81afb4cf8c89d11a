//! A self-signed certificate for the demo setup of `icsmail serve`, made on first start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

use crate::config::model::CertificatePair;

/// `<dir>/cert.pem` and `<dir>/key.pem` for `names`, generated if missing.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> anyhow::Result<CertificatePair> {
    let pair = CertificatePair {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    if pair.cert_file.exists() && pair.key_file.exists() {
        return Ok(pair);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .context("generating a self-signed certificate")?;
    let mut key = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&pair.key_file)
        .with_context(|| format!("writing {}", pair.key_file.display()))?;
    key.write_all(generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(&pair.cert_file, generated.cert.pem())
        .with_context(|| format!("writing {}", pair.cert_file.display()))?;
    Ok(pair)
}
