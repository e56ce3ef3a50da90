//! Secrets Vigil hands out and checks: random tokens (stored only as SHA-256),
//! and passwords (Argon2id, PHC strings).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a bearer secret.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Argon2id cost. The default follows OWASP's recommendation (19 MiB, t=2, p=1).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub memory_kib: u32,
    pub iterations: u32,
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            min_length: 12,
        }
    }
}

impl PasswordPolicy {
    fn argon2(&self) -> Result<Argon2<'static>> {
        let params =
            Params::new(self.memory_kib, self.iterations, 1, None).map_err(|e| Error::Hash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the length rule and hashes with Argon2id.
    pub fn hash(&self, password: &str) -> Result<String> {
        if password.chars().count() < self.min_length {
            return Err(Error::Invalid(format!(
                "password must be at least {} characters",
                self.min_length
            )));
        }
        if password.len() > 1024 {
            return Err(Error::Invalid("password must be at most 1024 bytes".into()));
        }
        let salt = SaltString::generate(&mut OsRng);
        Ok(self
            .argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::Hash(e.to_string()))?
            .to_string())
    }

    /// Verifies against a stored PHC string (its own parameters apply).
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }
}

/// A human-friendly random password for generated accounts (demo users).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!(
        "{}-{}-{}-{}",
        &chars[0..5],
        &chars[5..10],
        &chars[10..15],
        &chars[15..20]
    )
}

/// The installation's master key (wraps per-tenant data keys), and the keys
/// it replaced while a rotation is under way: [`MasterKey::seal`] always uses
/// the current key, [`MasterKey::open`] tries the current key and then the
/// previous ones. Never printed: `Debug` shows nothing of it.
pub struct MasterKey(secrecy::SecretBox<[u8; 32]>, Vec<secrecy::SecretBox<[u8; 32]>>);

impl MasterKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A key from raw bytes (e.g. a tenant data key after unwrapping).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(secrecy::SecretBox::new(Box::new(bytes)), Vec::new())
    }

    /// Keeps `previous` (and its own previous keys) for opening values
    /// sealed before a rotation; sealing stays with `self`'s current key.
    pub fn with_previous(mut self, previous: MasterKey) -> Self {
        let MasterKey(cur, older) = previous;
        self.1.push(cur);
        self.1.extend(older);
        self
    }

    /// How many previous keys are kept for opening.
    pub fn previous_keys(&self) -> usize {
        self.1.len()
    }

    /// Parses the key file format: 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self> {
        let raw = hex::decode(text.trim()).map_err(|_| Error::Invalid("master key is not hex".into()))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| Error::Invalid("master key must be 32 bytes (64 hex characters)".into()))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn to_hex(&self) -> String {
        use secrecy::ExposeSecret;
        hex::encode(self.0.expose_secret())
    }

    pub fn expose(&self) -> &[u8; 32] {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }

    /// AES-256-GCM with a random 96-bit nonce; `aad` binds the ciphertext to
    /// its owner (e.g. `totp:<user id>`), so it cannot be moved to another row.
    /// Output: base64url(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes256Gcm::new(self.expose().into());
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Invalid("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Inverse of [`MasterKey::seal`] (by the current or a previous key);
    /// fails on any tampering or a wrong `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>> {
        use secrecy::ExposeSecret;
        let first = Self::open_with(self.expose(), aad, sealed);
        if first.is_ok() || self.1.is_empty() {
            return first;
        }
        for k in &self.1 {
            if let Ok(v) = Self::open_with(k.expose_secret(), aad, sealed) {
                return Ok(v);
            }
        }
        first
    }

    fn open_with(key: &[u8; 32], aad: &str, sealed: &str) -> Result<Vec<u8>> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Error::Invalid("sealed value is not base64".into()))?;
        if raw.len() < 12 + 16 {
            return Err(Error::Invalid("sealed value too short".into()));
        }
        let (nonce, ct) = raw.split_at(12);
        let cipher = aes_gcm::Aes256Gcm::new(key.into());
        cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Invalid("sealed value failed authentication".into()))
    }
}

/// What wraps the tenant data keys: the master key (the data-dir key file
/// or a `*_FILE` secret), or an external key service implementing this
/// trait (a KMS call per unwrap; the vault asks only when it needs a data
/// key).
#[async_trait::async_trait]
pub trait Kms: Send + Sync + std::fmt::Debug {
    /// Wraps a tenant data key, bound to `aad`.
    async fn wrap_key(&self, aad: &str, key: &[u8]) -> Result<String>;
    /// Unwraps; fails on tampering or a wrong `aad`.
    async fn unwrap_key(&self, aad: &str, wrapped: &str) -> Result<Vec<u8>>;
}

#[async_trait::async_trait]
impl<K: Kms + ?Sized> Kms for std::sync::Arc<K> {
    async fn wrap_key(&self, aad: &str, key: &[u8]) -> Result<String> {
        (**self).wrap_key(aad, key).await
    }
    async fn unwrap_key(&self, aad: &str, wrapped: &str) -> Result<Vec<u8>> {
        (**self).unwrap_key(aad, wrapped).await
    }
}

#[async_trait::async_trait]
impl Kms for MasterKey {
    async fn wrap_key(&self, aad: &str, key: &[u8]) -> Result<String> {
        self.seal(aad, key)
    }
    async fn unwrap_key(&self, aad: &str, wrapped: &str) -> Result<Vec<u8>> {
        self.open(aad, wrapped)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = random_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_secret());
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn argon2id_round_trip() {
        let p = PasswordPolicy {
            memory_kib: 1024,
            iterations: 1,
            min_length: 12,
        };
        let h = p.hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse battery", &h));
        assert!(!p.verify("correct horse batterx", &h));
        assert!(!p.verify("anything", "not a phc string"));
        assert!(matches!(p.hash("short"), Err(Error::Invalid(_))));
    }

    #[test]
    fn sealing_binds_key_and_owner() {
        let k = MasterKey::generate();
        let sealed = k.seal("totp:a", b"secret").unwrap();
        assert_eq!(k.open("totp:a", &sealed).unwrap(), b"secret");
        assert!(k.open("totp:b", &sealed).is_err(), "wrong owner");
        assert!(
            MasterKey::generate().open("totp:a", &sealed).is_err(),
            "wrong key"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        raw[20] ^= 1;
        assert!(
            k.open("totp:a", &URL_SAFE_NO_PAD.encode(raw)).is_err(),
            "tampered"
        );
        assert_ne!(sealed, k.seal("totp:a", b"secret").unwrap(), "fresh nonce");
    }

    #[test]
    fn generated_passwords_pass_policy() {
        let pw = generate_password();
        assert_eq!(pw.len(), 23);
        assert!(PasswordPolicy::default().min_length <= pw.len());
    }
}
