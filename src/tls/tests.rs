//! Loading certificates: good pair, mismatched key, missing files, dhKeyLength groups.

use std::sync::Arc;

use super::*;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("icsmail-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn self_signed_pair_loads_and_reloads() {
    let dir = temp_dir("good");
    let pair = ensure_self_signed(&dir, &["localhost".to_string()]).unwrap();
    let provider = Arc::new(provider(2048));
    let cert = Arc::new(ReloadableCert::load(&pair, "smtp.certificate", provider).unwrap());
    cert.reload().unwrap();
    assert!(acceptor(cert).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mismatched_key_is_refused_with_the_key_named() {
    let one = ensure_self_signed(&temp_dir("one"), &["a.test".to_string()]).unwrap();
    let two = ensure_self_signed(&temp_dir("two"), &["b.test".to_string()]).unwrap();
    let mixed = CertificatePair {
        cert_file: one.cert_file.clone(),
        key_file: two.key_file.clone(),
    };
    let err = load_certified_key(&mixed, "access.certificate", &provider(2048)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("access.certificate: the private key does not match"),
        "{err}"
    );
}

#[test]
fn missing_files_name_the_setting() {
    let pair = CertificatePair {
        cert_file: "/nonexistent/cert.pem".into(),
        key_file: "/nonexistent/key.pem".into(),
    };
    let err = load_certified_key(&pair, "smtp.certificate", &provider(2048)).unwrap_err();
    assert!(
        err.to_string().starts_with("smtp.certificate.certFile: "),
        "{err}"
    );
}

#[test]
fn strongest_setting_keeps_only_strong_groups() {
    let names = |length| -> Vec<String> {
        provider(length)
            .kx_groups
            .iter()
            .map(|group| format!("{:?}", group.name()))
            .collect()
    };
    assert_eq!(names(4096), ["X25519MLKEM768", "secp384r1"]);
    assert!(names(2048).contains(&"X25519".to_string()));
}
