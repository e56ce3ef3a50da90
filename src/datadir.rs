//! The data directory: created on first run (mode 0700), locked by the one
//! `serve` that uses it with SQLite, home of the master key and the audit
//! signing key (mode 0600).
//!
//! A start that fails leaves nothing behind: the directory, if this run
//! created it, or else the files this run created in it, are removed when
//! the [`DataDir`] is dropped before [`DataDir::keep`] is called.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vigil_orchestrator::audit;
use vigil_orchestrator::secrets::credentials::MasterKey;

use crate::Error;
use crate::config::io_reason;

#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    created_dir: bool,
    created_files: Vec<PathBuf>,
    keep: bool,
    lock: Option<File>,
}

impl DataDir {
    /// Uses `path`, creating it (and missing parents) if needed.
    pub fn prepare(path: &Path) -> Result<Self, Error> {
        let created_dir = match fs::metadata(path) {
            Ok(m) if m.is_dir() => false,
            Ok(_) => {
                return Err(Error::DataDir(format!(
                    "data directory {} is not a directory",
                    path.display()
                )));
            }
            Err(_) => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(|e| {
                        Error::DataDir(format!(
                            "cannot create data directory {}: {}",
                            path.display(),
                            io_reason(&e)
                        ))
                    })?;
                true
            }
        };
        let dir = Self {
            path: path.to_owned(),
            created_dir,
            created_files: Vec::new(),
            keep: false,
            lock: None,
        };
        // Fail now, not halfway through, if we cannot write here.
        let probe = path.join(".vigil-write-test");
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| {
                Error::DataDir(format!(
                    "cannot write to data directory {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that this run is about to create `file` (removed on failure).
    pub fn will_create(&mut self, file: &Path) {
        if !file.exists() {
            self.created_files.push(file.to_owned());
        }
    }

    /// Creates `file` empty with mode 0600 unless it exists (SQLite gives its
    /// -wal and -shm companions the same mode).
    pub fn create_private_file(&mut self, file: &Path) -> Result<(), Error> {
        if file.exists() {
            return Ok(());
        }
        self.will_create(file);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map(|_| ())
            .map_err(|e| Error::DataDir(format!("cannot create {}: {}", file.display(), io_reason(&e))))
    }

    /// Takes the exclusive lock that keeps a second `serve` off this directory.
    pub fn lock(&mut self) -> Result<(), Error> {
        let path = self.path.join("vigil.lock");
        self.will_create(&path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::DataDir(format!(
                    "cannot open lock file {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {
                self.lock = Some(file);
                Ok(())
            }
            Err(TryLockError::WouldBlock) => Err(Error::DataDir(format!(
                "data directory {} is in use by another vigil process (lock held on {})",
                self.path.display(),
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(Error::DataDir(format!(
                "cannot lock {}: {}",
                path.display(),
                io_reason(&e)
            ))),
        }
    }

    /// Loads the master key from `path`, creating it (0600) if it is the
    /// default location and does not exist yet. `explicit` keys must exist.
    pub fn master_key(&mut self, path: &Path, explicit: bool) -> Result<MasterKey, Error> {
        let text = self.key_file(path, explicit, "master key", || MasterKey::generate().to_hex())?;
        MasterKey::from_hex(&text)
            .map_err(|e| Error::DataDir(format!("master key file {}: {e}", path.display())))
    }

    /// Loads the audit checkpoint signing key (Ed25519) from `path`, creating
    /// it (0600) like the master key. It is never stored in the database.
    pub fn audit_key(&mut self, path: &Path, explicit: bool) -> Result<audit::chain::SigningKey, Error> {
        let text = self.key_file(path, explicit, "audit signing key", || {
            audit::chain::SigningKey::generate().to_hex()
        })?;
        audit::chain::SigningKey::from_hex(&text)
            .map_err(|e| Error::DataDir(format!("audit signing key file {}: {e}", path.display())))
    }

    /// A secret key file's text: read if it exists (refused if group or
    /// others may read it), else created with `generate()` (0600) unless
    /// the path was named explicitly.
    fn key_file(
        &mut self,
        path: &Path,
        explicit: bool,
        what: &str,
        generate: impl FnOnce() -> String,
    ) -> Result<String, Error> {
        match fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::DataDir(format!(
                        "{what} file {} has mode {mode:o}; it must not be readable by group or others (chmod 600 {})",
                        path.display(),
                        path.display()
                    )));
                }
                fs::read_to_string(path).map_err(|e| {
                    Error::DataDir(format!(
                        "cannot read {what} file {}: {}",
                        path.display(),
                        io_reason(&e)
                    ))
                })
            }
            Err(_) if explicit => Err(Error::DataDir(format!(
                "{what} file {} does not exist",
                path.display()
            ))),
            Err(_) => {
                self.will_create(path);
                let text = generate();
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| {
                        Error::DataDir(format!(
                            "cannot create {what} file {}: {}",
                            path.display(),
                            io_reason(&e)
                        ))
                    })?;
                f.write_all(format!("{text}\n").as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| {
                        Error::DataDir(format!(
                            "cannot write {what} file {}: {}",
                            path.display(),
                            io_reason(&e)
                        ))
                    })?;
                Ok(text)
            }
        }
    }

    /// The start succeeded: keep everything.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if self.created_dir {
            let _ = fs::remove_dir_all(&self.path);
        } else {
            for f in &self.created_files {
                let _ = fs::remove_file(f);
                // SQLite's companions.
                for suffix in ["-wal", "-shm", "-journal"] {
                    let mut p = f.clone().into_os_string();
                    p.push(suffix);
                    let _ = fs::remove_file(PathBuf::from(p));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_start_removes_what_it_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        {
            let mut d = DataDir::prepare(&dir).unwrap();
            d.lock().unwrap();
            d.master_key(&dir.join("master.key"), false).unwrap();
            assert!(dir.join("master.key").exists());
        }
        assert!(!tmp.path().join("a/b").exists());

        // An existing directory stays; only the files this run made go.
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("keepme"), "x").unwrap();
        {
            let mut d = DataDir::prepare(&dir).unwrap();
            d.master_key(&dir.join("master.key"), false).unwrap();
        }
        assert!(dir.join("keepme").exists() && !dir.join("master.key").exists());
    }

    #[test]
    fn master_key_is_private_and_stable() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        let first = {
            let mut d = DataDir::prepare(tmp.path()).unwrap();
            let k = d.master_key(&path, false).unwrap();
            d.keep();
            k.to_hex()
        };
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let mut d = DataDir::prepare(tmp.path()).unwrap();
        assert_eq!(d.master_key(&path, false).unwrap().to_hex(), first);
        assert!(!format!("{:?}", d.master_key(&path, false).unwrap()).contains(&first[..8]));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = d.master_key(&path, false).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let e = d
            .master_key(&tmp.path().join("elsewhere.key"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        d.keep();
    }

    #[test]
    fn second_lock_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = DataDir::prepare(tmp.path()).unwrap();
        a.lock().unwrap();
        a.keep();
        let mut b = DataDir::prepare(tmp.path()).unwrap();
        let e = b.lock().unwrap_err().to_string();
        assert!(e.contains("in use by another vigil process"), "{e}");
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        assert!(
            DataDir::prepare(tmp.path())
                .unwrap_err()
                .to_string()
                .contains("is not a directory")
        );
        let e = DataDir::prepare(&tmp.path().join("sub")).unwrap_err().to_string();
        assert!(e.contains("cannot create data directory"), "{e}");
    }
}
