//! Secrets at rest: passwords are sealed with XChaCha20-Poly1305 under a 256-bit key kept in
//! a key file beside the database (mode 0600, created with the database). The database holds
//! only ciphertext and a key check, so the database file alone reveals no password, and a
//! wrong or missing key file is detected before anything is written.

use crate::error::StationError;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The sealing key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

/// Plaintext sealed as the key check: opening it proves the key file matches the database.
const CHECK: &[u8] = b"office-phones key check v1";

/// The key file that belongs to a database file: `office.db` → `office.db.key`.
pub fn key_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

/// The folder of the office's TLS files beside a database: `office.db` → `office.db.tls/`
/// (the office CA `ca.pem` phones trust, the PBX's certificate and the keys).
pub fn tls_dir(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".tls");
    PathBuf::from(p)
}

impl Sealer {
    /// Loads the key file.
    pub fn load(path: &Path) -> Result<Self, StationError> {
        let hexkey = std::fs::read_to_string(path).map_err(|e| StationError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(hexkey.trim(), &mut key).map_err(|_| StationError::KeyFile {
            path: path.to_path_buf(),
            reason: "not 64 hex digits".into(),
        })?;
        Ok(Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// Creates a new random key file (mode 0600); refuses to overwrite one.
    pub fn create(path: &Path) -> Result<Self, StationError> {
        let key: [u8; 32] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let err = |e: std::io::Error| StationError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut f = options.open(path).map_err(err)?;
        writeln!(f, "{}", hex::encode(key)).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// Seals a secret: hex of nonce ‖ ciphertext.
    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce: [u8; 24] = rand::random();
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain)
            .unwrap_or_default();
        format!("{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// Opens a sealed secret; None when it was sealed under another key or is damaged.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let bytes = hex::decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(24);
        self.cipher.decrypt(XNonce::from_slice(nonce), ct).ok()
    }

    pub fn key_check(&self) -> String {
        self.seal(CHECK)
    }

    pub fn verifies(&self, check: &str) -> bool {
        self.open(check).is_some_and(|p| p == CHECK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = Sealer::create(&dir.path().join("a.key")).unwrap();
        let b = Sealer::create(&dir.path().join("b.key")).unwrap();
        let sealed = a.seal(b"Corr3ct-horse");
        assert!(!sealed.contains("Corr3ct"));
        assert_eq!(a.open(&sealed).unwrap(), b"Corr3ct-horse");
        assert!(b.open(&sealed).is_none());
        assert!(a.verifies(&a.key_check()) && !b.verifies(&a.key_check()));
        assert!(
            Sealer::create(&dir.path().join("a.key")).is_err(),
            "never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("a.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
