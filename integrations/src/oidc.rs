//! OpenID Connect relying party (authorization code + PKCE S256), with the
//! `openidconnect` crate: discovery, the authorization request (state,
//! nonce, PKCE), the code exchange and the ID token's verification —
//! signature by a key of the provider's JWKS with an algorithm pinned per
//! provider (never `none`, never an HMAC keyed by the client secret), `iss`,
//! `aud`, `exp`, nonce. An unknown `kid` refetches the JWKS (at most once
//! per [`JWKS_REFETCH_EVERY`] per provider), so a key rotation at the IdP
//! keeps working. Knows nothing about the database: the caller keeps the
//! state of a login in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdToken, IdTokenVerifier, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Least time between two JWKS refetches of one provider on unknown keys.
pub const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(30);

/// Algorithms a provider may be pinned to (asymmetric only).
pub const ALGORITHMS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"];

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider unreachable or its discovery document is invalid: {0}")]
    Discovery(String),
    #[error("identity provider configuration is invalid: {0}")]
    Config(String),
    #[error("the identity provider refused the code exchange: {0}")]
    Exchange(String),
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    #[error("ID token refused: {0}")]
    Token(String),
}

/// A provider as configured by its tenant.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Pinned signing algorithms (from [`ALGORITHMS`]).
    pub algorithms: Vec<String>,
    /// The claim carrying the user's groups (e.g. `groups`).
    pub group_claim: String,
    /// Scopes asked for besides `openid`, `email` and the group claim.
    pub scopes: Vec<String>,
}

/// Most extra scopes a provider may ask for.
pub const MAX_SCOPES: usize = 16;

impl ProviderConfig {
    /// Checks what a tenant admin entered (no network).
    pub fn validate(&self) -> Result<(), OidcError> {
        let url = openidconnect::url::Url::parse(&self.issuer)
            .map_err(|e| OidcError::Config(format!("issuer is not a URL: {e}")))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(OidcError::Config("issuer must be an https URL".into()));
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 256 {
            return Err(OidcError::Config("client_id must be 1 to 256 characters".into()));
        }
        if self.algorithms.is_empty() {
            return Err(OidcError::Config("pin at least one signing algorithm".into()));
        }
        for a in &self.algorithms {
            if !ALGORITHMS.contains(&a.as_str()) {
                return Err(OidcError::Config(format!(
                    "algorithm `{a}` is not allowed (one of {})",
                    ALGORITHMS.join(", ")
                )));
            }
        }
        if self.group_claim.is_empty() || self.group_claim.len() > 100 {
            return Err(OidcError::Config(
                "group_claim must be 1 to 100 characters".into(),
            ));
        }
        if self.scopes.len() > MAX_SCOPES {
            return Err(OidcError::Config(format!("scopes: at most {MAX_SCOPES}")));
        }
        for sc in &self.scopes {
            // RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and `\`.
            let token = !sc.is_empty()
                && sc.len() <= 100
                && sc
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !token {
                return Err(OidcError::Config(format!(
                    "scopes: `{}` is not a scope token (1 to 100 printable ASCII characters, no space, quote or backslash)",
                    sc.escape_debug()
                )));
            }
        }
        Ok(())
    }

    fn pinned(&self) -> Result<Vec<CoreJwsSigningAlgorithm>, OidcError> {
        self.algorithms
            .iter()
            .map(|a| {
                serde_json::from_value(Value::String(a.clone()))
                    .map_err(|_| OidcError::Config(format!("unknown algorithm `{a}`")))
            })
            .collect()
    }
}

/// What the relying party must keep until the callback.
#[derive(Debug, Clone)]
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The verified identity from an ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// The IdP asserts it verified `email` (OIDC `email_verified`; for SAML,
    /// the provider's configuration says its e-mail attribute is verified).
    pub email_verified: bool,
    pub groups: Vec<String>,
    /// Authentication methods the IdP asserts (`amr`), e.g. `mfa`, `otp`.
    pub amr: Vec<String>,
}

/// Claims beyond the standard ones (the group claim among them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extra {
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

impl AdditionalClaims for Extra {}

type VigilIdToken =
    IdToken<Extra, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

#[derive(Debug)]
struct Discovered {
    metadata: CoreProviderMetadata,
    jwks: CoreJsonWebKeySet,
    jwks_fetched: Instant,
}

/// What a provider's discovery showed when it was checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: Option<String>,
    pub jwks_uri: String,
    /// Keys usable for the pinned algorithms.
    pub signing_keys: usize,
}

/// The relying party: an HTTP client (no redirects followed) and each
/// provider's discovery document and keys, cached by issuer.
#[derive(Debug)]
pub struct RelyingParty {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Arc<Discovered>>>,
    refetch_every: Duration,
}

impl RelyingParty {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            http,
            cache: Mutex::default(),
            refetch_every: JWKS_REFETCH_EVERY,
        }
    }

    /// The same, refetching keys on an unknown `kid` at most once per
    /// `every` (the default is [`JWKS_REFETCH_EVERY`]).
    pub fn with_refetch_every(every: Duration) -> Self {
        Self {
            refetch_every: every,
            ..Self::new()
        }
    }

    fn cached(&self, issuer: &str) -> Option<Arc<Discovered>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(issuer)
            .cloned()
    }

    fn store(&self, issuer: &str, d: Arc<Discovered>) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(issuer.to_owned(), d);
    }

    async fn discovered(&self, cfg: &ProviderConfig) -> Result<Arc<Discovered>, OidcError> {
        if let Some(d) = self.cached(&cfg.issuer) {
            return Ok(d);
        }
        let issuer = IssuerUrl::new(cfg.issuer.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
        // Discovery checks that the document's issuer is exactly this one.
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let jwks = metadata.jwks().clone();
        let d = Arc::new(Discovered {
            metadata,
            jwks,
            jwks_fetched: Instant::now(),
        });
        self.store(&cfg.issuer, d.clone());
        Ok(d)
    }

    /// Loads the provider's discovery document and keys afresh (whatever
    /// is cached): the document must name exactly this issuer, and the key
    /// set must hold a signing key for one of the pinned algorithms. What a
    /// tenant admin is told when configuring or testing a provider.
    pub async fn check(&self, cfg: &ProviderConfig) -> Result<Checked, OidcError> {
        cfg.validate()?;
        let issuer = IssuerUrl::new(cfg.issuer.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let jwks = metadata.jwks().clone();
        let kty = |alg: &str| match alg.get(..2) {
            Some("RS" | "PS") => "RSA",
            Some("ES") => "EC",
            _ => "OKP",
        };
        let usable = jwks
            .keys()
            .iter()
            .filter_map(|k| serde_json::to_value(k).ok())
            .filter(|k| k.get("use").and_then(Value::as_str).is_none_or(|u| u == "sig"))
            .filter(|k| {
                let t = k.get("kty").and_then(Value::as_str).unwrap_or_default();
                cfg.algorithms.iter().any(|a| kty(a) == t)
            })
            .count();
        if usable == 0 {
            return Err(OidcError::Discovery(format!(
                "the provider's key set ({}) has no signing key for {}",
                metadata.jwks_uri().url(),
                cfg.algorithms.join(", ")
            )));
        }
        let checked = Checked {
            issuer: metadata.issuer().url().to_string(),
            authorization_endpoint: metadata.authorization_endpoint().url().to_string(),
            token_endpoint: metadata.token_endpoint().map(|t| t.url().to_string()),
            jwks_uri: metadata.jwks_uri().url().to_string(),
            signing_keys: usable,
        };
        self.store(
            &cfg.issuer,
            Arc::new(Discovered {
                metadata,
                jwks,
                jwks_fetched: Instant::now(),
            }),
        );
        Ok(checked)
    }

    /// Refetches the provider's keys unless that was done less than the
    /// refetch interval ago; whether new keys were fetched.
    async fn refetch_keys(&self, cfg: &ProviderConfig, d: &Discovered) -> Result<bool, OidcError> {
        if d.jwks_fetched.elapsed() < self.refetch_every {
            return Ok(false);
        }
        let jwks = CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| OidcError::Discovery(format!("JWKS: {e}")))?;
        self.store(
            &cfg.issuer,
            Arc::new(Discovered {
                metadata: d.metadata.clone(),
                jwks,
                jwks_fetched: Instant::now(),
            }),
        );
        Ok(true)
    }

    /// The authorization request: where to send the browser, and the
    /// state, nonce and PKCE verifier to keep until the callback.
    pub async fn start(&self, cfg: &ProviderConfig, redirect: &str) -> Result<Started, OidcError> {
        let d = self.discovered(cfg).await?;
        let client = client(cfg, &d, redirect)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new(cfg.group_claim.clone()))
            .add_scopes(cfg.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// The callback's second half: exchanges the code (with the PKCE
    /// verifier) and verifies the ID token against the nonce kept at
    /// [`RelyingParty::start`].
    pub async fn finish(
        &self,
        cfg: &ProviderConfig,
        redirect: &str,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
        now: DateTime<Utc>,
    ) -> Result<Identity, OidcError> {
        let d = self.discovered(cfg).await?;
        let client = client(cfg, &d, redirect)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(exchange_error(&e)))?;
        use openidconnect::TokenResponse as _;
        let token = response.id_token().ok_or(OidcError::NoIdToken)?.to_string();
        self.verify(cfg, &token, nonce, now).await
    }

    /// Verifies an ID token of the provider ([`verify_id_token`] with its
    /// discovered keys; an unknown key id refetches them, rate-limited).
    pub async fn verify(
        &self,
        cfg: &ProviderConfig,
        token: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<Identity, OidcError> {
        let d = self.discovered(cfg).await?;
        match verify_id_token(cfg, &d.metadata, &d.jwks, token, nonce, now) {
            Err(OidcError::Token(m)) if m.starts_with(NO_KEY) => {
                if self.refetch_keys(cfg, &d).await? {
                    let d = self.discovered(cfg).await?;
                    verify_id_token(cfg, &d.metadata, &d.jwks, token, nonce, now)
                } else {
                    Err(OidcError::Token(m))
                }
            }
            other => other,
        }
    }
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

fn client(cfg: &ProviderConfig, d: &Discovered, redirect: &str) -> Result<Client, OidcError> {
    Ok(CoreClient::from_provider_metadata(
        d.metadata.clone(),
        ClientId::new(cfg.client_id.clone()),
        cfg.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).map_err(|e| OidcError::Config(e.to_string()))?))
}

impl Default for RelyingParty {
    fn default() -> Self {
        Self::new()
    }
}

fn exchange_error<E: std::error::Error>(e: &E) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

const NO_KEY: &str = "no key of the provider matches";

/// Verifies an ID token (compact JWS) of the provider: signature by a key
/// of `jwks` with a pinned algorithm, issuer, audience (this client),
/// expiry against `now`, and `nonce`. A public-client verifier: an HMAC
/// token keyed by the client secret is never accepted, nor `alg: none`.
pub fn verify_id_token(
    cfg: &ProviderConfig,
    metadata: &CoreProviderMetadata,
    jwks: &CoreJsonWebKeySet,
    token: &str,
    nonce: &str,
    now: DateTime<Utc>,
) -> Result<Identity, OidcError> {
    use openidconnect::{ClaimsVerificationError as C, SignatureVerificationError as S};
    let parsed: VigilIdToken = token
        .parse()
        .map_err(|e| OidcError::Token(format!("malformed: {e}")))?;
    let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = IdTokenVerifier::new_public_client(
        ClientId::new(cfg.client_id.clone()),
        metadata.issuer().clone(),
        jwks.clone(),
    )
    .set_allowed_algs(cfg.pinned()?)
    .set_time_fn(move || now);
    let claims = parsed
        .claims(&verifier, &Nonce::new(nonce.to_owned()))
        .map_err(|e| {
            OidcError::Token(match e {
                C::SignatureVerification(S::NoMatchingKey) => format!("{NO_KEY} the token's key id"),
                C::SignatureVerification(S::DisallowedAlg(a)) => {
                    format!("signing algorithm not pinned for this provider: {a}")
                }
                C::SignatureVerification(S::NoSignature) => "the token is unsigned".into(),
                C::InvalidNonce(m) => format!("nonce mismatch: {m}"),
                C::InvalidIssuer(m) => format!("wrong issuer: {m}"),
                C::InvalidAudience(m) => format!("wrong audience: {m}"),
                C::Expired(m) => format!("expired: {m}"),
                other => other.to_string(),
            })
        })?;
    let groups = match claims.additional_claims().rest.get(&cfg.group_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(_) => {
            return Err(OidcError::Token(format!(
                "claim `{}` is neither a string nor a list of strings",
                cfg.group_claim
            )));
        }
    };
    Ok(Identity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        groups,
        amr: claims
            .auth_method_refs()
            .map(|v| v.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ProviderConfig {
        ProviderConfig {
            issuer: "https://idp.example".into(),
            client_id: "vigil".into(),
            client_secret: None,
            algorithms: vec!["RS256".into()],
            group_claim: "groups".into(),
            scopes: Vec::new(),
        }
    }

    #[test]
    fn configuration_is_checked() {
        assert!(cfg().validate().is_ok());
        let mut c = cfg();
        c.issuer = "http://idp.example".into();
        assert!(c.validate().is_err(), "plain http off loopback");
        let mut c = cfg();
        c.algorithms = vec!["HS256".into()];
        assert!(c.validate().unwrap_err().to_string().contains("HS256"));
        let mut c = cfg();
        c.algorithms = vec!["none".into()];
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.algorithms.clear();
        assert!(c.validate().is_err());
    }
}
