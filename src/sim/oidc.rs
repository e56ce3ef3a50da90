//! An OpenID Connect provider's discovery, from OpenID Connect Discovery
//! 1.0 (§3 the provider metadata at `/.well-known/openid-configuration`,
//! its `issuer` exactly the issuer URL) and RFC 7517 (the JWK Set at
//! `jwks_uri`): what a relying party loads before any sign-in. It signs
//! nothing (sign-in is tested against a real provider, e2e/idp/oidc); it
//! lets a test check that Vigil validates a provider when it is configured.
//! The key set can be emptied to play a provider that lost its keys.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Running, serve};

/// A 2048-bit RSA public key (its private half was never kept).
const N: &str = "7FNaTCfTTvJvo-a94CMJ8OopgfotP1UJpK-1wKWletdAwp6kksj30ksXjAIoyTwrzWzuw73zS0oJqwnRv47Q6iM-zYjOC1osUyFA1shfI7-akYczggw2qFgYxju0dHqZAsD3xLmNIMqFuGQflFQlCJo-XQH8q9tbdSQSotsgNPGlnmACWe2JGHWs7ELKWcqf5q2njcPqaoN7lOdh5gFpjdAv-NhWa38RgDS7VXTr2U_WcuXvAY8LQVuxjJX5ln1z0ahu15O972kORAjVZLmyqS2JzWgOzJ2HV2Ag41rs4dAOs3mdRLT-z992qcTRiPQpoRbEaNPxEsB1YuC0z23OXQ";

#[derive(Debug)]
pub struct Discovery {
    /// The simulator's own URL (the issuer, unless `issuer` says otherwise).
    base: Mutex<String>,
    /// Another issuer for the metadata to name (a provider misconfigured).
    pub issuer: Mutex<Option<String>>,
    /// The keys `jwks_uri` serves.
    pub keys: Mutex<Vec<Value>>,
}

/// One RSA signing key for RS256, as a JWK.
pub fn rsa_key(kid: &str) -> Value {
    json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": N, "e": "AQAB"})
}

pub async fn start() -> (Running, Arc<Discovery>) {
    let d = Arc::new(Discovery {
        base: Mutex::new(String::new()),
        issuer: Mutex::new(None),
        keys: Mutex::new(vec![rsa_key("k1")]),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/jwks", get(jwks))
        .with_state(d.clone());
    let run = serve(app).await;
    *d.base.lock().unwrap() = run.base();
    (run, d)
}

async fn metadata(State(d): State<Arc<Discovery>>) -> Json<Value> {
    let base = d.base.lock().unwrap().clone();
    let issuer = d.issuer.lock().unwrap().clone().unwrap_or_else(|| base.clone());
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(d): State<Arc<Discovery>>) -> Json<Value> {
    Json(json!({"keys": d.keys.lock().unwrap().clone()}))
}
