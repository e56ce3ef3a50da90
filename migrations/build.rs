//! Fingerprints the migration sources so test harnesses can key a migrated
//! PostgreSQL template database on the exact schema they were built from.
use sha2::{Digest, Sha256};
use std::path::Path;

fn main() {
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        hasher.update(f.to_string_lossy().as_bytes());
        if let Ok(bytes) = std::fs::read(f) {
            hasher.update(&bytes);
        }
    }
    println!("cargo:rerun-if-changed=src");
    let digest = hex::encode(hasher.finalize());
    println!("cargo:rustc-env=VIGIL_SCHEMA_FINGERPRINT={}", &digest[..16]);
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
