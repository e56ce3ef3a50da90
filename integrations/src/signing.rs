//! The HMAC-SHA256 signature Vigil uses in both directions: webhooks in
//! (`POST /api/v1/ingest/{id}`) and notification webhooks out.
//! `X-Vigil-Timestamp: <unix seconds>` and
//! `X-Vigil-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Verifies `sha256=HEX` over `timestamp + "." + body`, in constant time.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// What a sender computes.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let s = sign(b"k", "1700000000", b"{}");
        assert!(verify_signature(b"k", "1700000000", b"{}", &s));
        assert!(!verify_signature(b"k", "1700000001", b"{}", &s));
        assert!(!verify_signature(b"other", "1700000000", b"{}", &s));
        assert!(!verify_signature(b"k", "1700000000", b"{}", "sha256=zz"));
        assert!(!verify_signature(b"k", "1700000000", b"{}", &s[7..]));
    }
}
