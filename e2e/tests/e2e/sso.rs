//! OpenID Connect sign-in against a real provider: npm `oidc-provider`
//! (e2e/idp/oidc, installed by ./test.sh), run as a child process, with
//! Vigil's router served in process. The happy path and the attacks of
//! issue 5, each refused with a clear page and an audit entry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;
use vigil::authz::Authorizer;
use vigil::web::{self, AppState};
use vigil_integrations::oidc::{ProviderConfig, RelyingParty};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Clock, Role, SystemClock, TenantId, identity, identity::sso};

pub(crate) const SECRET: &str = "vigil-client-secret";

pub(crate) struct Idp {
    _child: tokio::process::Child,
    pub(crate) issuer: String,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn start_idp(port: u16, key_dir: &Path, keys: &str, redirect: &str) -> Idp {
    let accounts = json!({
        "alice": {"email": "alice@example.com", "email_verified": true, "groups": ["soc"]},
        "bob": {"email": "bob@example.com", "email_verified": true, "groups": ["marketing"]},
        "carol": {"email": "carol@example.com", "email_verified": true, "groups": ["soc", "soc-admins"]},
    });
    start_idp_with(port, key_dir, keys, redirect, accounts).await
}

async fn start_idp_with(port: u16, key_dir: &Path, keys: &str, redirect: &str, accounts: Value) -> Idp {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("idp/oidc/server.mjs");
    assert!(
        script.with_file_name("node_modules").exists(),
        "run ./test.sh (it installs e2e/idp/oidc's node modules)"
    );
    let clients = json!([{"client_id": "vigil", "client_secret": SECRET, "redirect_uris": [redirect]}]);
    let mut child = tokio::process::Command::new("node")
        .arg(&script)
        .env("PORT", port.to_string())
        .env("KEY_DIR", key_dir)
        .env("KEYS", keys)
        .env("CLIENTS", clients.to_string())
        .env("ACCOUNTS", accounts.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (./test.sh installs Node.js)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // A deadline, not a speed check: on two loaded cores the IdP's first
    // RSA key generation and module load once took over 30 s (CI rehearsal).
    let issuer = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the IdP printed its address");
            if let Some(i) = line.strip_prefix("listening ") {
                return i.to_owned();
            }
        }
    })
    .await
    .expect("the IdP starts");
    // Keep reading: a closed pipe would kill the IdP at its next line.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Idp {
        _child: child,
        issuer,
    }
}

/// A browser: no automatic redirects, one cookie jar for all hosts (the
/// IdP's and Vigil's cookie names differ).
#[derive(Default)]
pub(crate) struct Browser {
    pub(crate) jar: HashMap<String, String>,
}

impl Browser {
    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        self.send(url, None).await
    }

    /// POSTs a form (url-encoded).
    pub(crate) async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(url, Some(form)).await
    }

    async fn send(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> reqwest::Response {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut req = match form {
            None => http.get(url),
            // As a browser marks a form an IdP's page posts to Vigil.
            Some(f) => http.post(url).form(f).header("sec-fetch-site", "cross-site"),
        };
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let res = req.send().await.unwrap();
        for c in res.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || attrs.contains("expires=Thu, 01 Jan 1970") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_owned(), v.to_owned());
            }
        }
        res
    }

    /// Follows one redirect; the absolute target.
    pub(crate) async fn hop(&mut self, url: &str) -> String {
        let res = self.get(url).await;
        assert!(res.status().is_redirection(), "{url}: {}", res.status());
        let loc = res.headers()["location"].to_str().unwrap();
        reqwest::Url::parse(url).unwrap().join(loc).unwrap().to_string()
    }

    /// From Vigil's login link to the callback URL the IdP sends back.
    async fn through_idp(&mut self, vigil: &str, provider: Uuid, user: &str, amr: &str) -> String {
        let auth = self.hop(&format!("{vigil}/sso/{provider}/login")).await;
        assert!(auth.contains("code_challenge_method=S256"), "{auth}");
        assert!(auth.contains("nonce="), "{auth}");
        let interaction = self.hop(&auth).await;
        let resume = self.hop(&format!("{interaction}?user={user}&amr={amr}")).await;
        let callback = self.hop(&resume).await;
        assert!(
            callback.starts_with(&format!("{vigil}/sso/{provider}/callback?")),
            "{callback}"
        );
        callback
    }
}

async fn provider(db: &TestDb, t: TenantId, master: &MasterKey, name: &str, issuer: &str) -> Uuid {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let p = sso::create_provider(
        &tx,
        &SystemClock,
        master,
        &Actor::cli(),
        sso::NewProvider {
            name: name.into(),
            issuer: issuer.into(),
            client_id: "vigil".into(),
            client_secret: Some(SECRET.into()),
            algorithms: vec!["RS256".into()],
            group_claim: "groups".into(),
            role_map: vec![
                ("soc".into(), Role::AnalystEdit),
                ("soc-admins".into(), Role::TenantAdmin),
            ],
            trust_idp_mfa: true,
            scopes: Vec::new(),
            domains: vec!["example.com".into()],
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    p.id
}

pub(crate) async fn refusals(db: &TestDb, t: TenantId) -> i64 {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let n = tx
        .query_one_raw(sea_orm::Statement::from_string(
            tx.get_database_backend(),
            "SELECT count(*) AS n FROM audit_events WHERE action = 'login.sso_refused'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    tx.commit().await.unwrap();
    n
}

pub(crate) async fn tamper(db: &TestDb, t: TenantId, set: &str) {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let r = tx
        .execute_raw(sea_orm::Statement::from_string(
            tx.get_database_backend(),
            format!("UPDATE sso_logins SET {set}"),
        ))
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    tx.commit().await.unwrap();
}

/// Asserts a refused callback: status, the page's reason, one more audit
/// entry.
async fn refused(b: &mut Browser, db: &TestDb, t: TenantId, url: &str, status: StatusCode, why: &str) {
    let before = refusals(db, t).await;
    let res = b.get(url).await;
    assert_eq!(res.status(), status, "{url}");
    assert!(
        res.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().starts_with("vigil_session="))
    );
    let page = res.text().await.unwrap();
    assert!(page.contains(why), "expected {why:?} in {page}");
    assert_eq!(refusals(db, t).await, before + 1, "audited: {why}");
}

async fn sign_in(b: &mut Browser, url: &str) -> String {
    let res = b.get(url).await;
    assert_eq!(res.status(), StatusCode::OK, "{url}");
    let page = res.text().await.unwrap();
    assert!(b.jar.contains_key("vigil_session"), "{page}");
    page
}

pub(crate) async fn api(b: &mut Browser, url: &str) -> (StatusCode, Value) {
    let res = b.get(url).await;
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn tenant(db: &TestDb) -> TenantId {
    let tx = db.store.begin_platform().await.unwrap();
    let t = identity::create_tenant(&tx, &SystemClock, &Actor::cli(), "T")
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    t
}

async fn oidc_sign_in(db: TestDb) {
    let t = tenant(&db).await;
    let keys = tempfile::tempdir().unwrap();
    let keys_b = tempfile::tempdir().unwrap();
    // Each provider's id is in its callback URL, which its IdP must know:
    // ports first, then providers, then the IdPs.
    let (port_a, port_b) = (free_port(), free_port());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master = MasterKey::generate();
    let pa = provider(&db, t, &master, "A", &format!("http://127.0.0.1:{port_a}")).await;
    let pb = provider(&db, t, &master, "B", &format!("http://127.0.0.1:{port_b}")).await;
    let base = serve(&db, listener, master).await;
    let idp_a = start_idp(port_a, keys.path(), "a", &format!("{base}/sso/{pa}/callback")).await;
    let idp_b = start_idp(port_b, keys_b.path(), "a", &format!("{base}/sso/{pb}/callback")).await;

    // Alice: group `soc` → analyst_edit, provisioned on first sign-in.
    let mut alice = Browser::default();
    let cb = alice.through_idp(&base, pa, "alice", "pwd").await;
    assert!(
        cb.contains(&format!("iss={}", urlencode(&idp_a.issuer))),
        "RFC 9207 iss: {cb}"
    );
    let page = sign_in(&mut alice, &cb).await;
    assert!(page.contains("url=/\""), "analyst_edit needs no MFA: {page}");
    assert!(
        !alice.jar.contains_key("vigil_sso"),
        "the login cookie is cleared"
    );
    let (st, me) = api(&mut alice, &format!("{base}/api/v1/me")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["tenant"], json!(t.0));
    assert_eq!(me["platform_admin"], false);
    let (st, _) = api(&mut alice, &format!("{base}/api/v1/cases")).await;
    assert_eq!(st, StatusCode::OK, "analyst_edit reads cases");
    let (st, _) = api(&mut alice, &format!("{base}/api/v1/sso/providers")).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "only tenant admins configure SSO");
    // The same callback again: the state is used up.
    refused(
        &mut alice,
        &db,
        t,
        &cb,
        StatusCode::UNAUTHORIZED,
        "unknown or already used state",
    )
    .await;
    // A second sign-in finds the same user.
    let mut again = Browser::default();
    let cb = again.through_idp(&base, pa, "alice", "pwd").await;
    sign_in(&mut again, &cb).await;
    let (_, me2) = api(&mut again, &format!("{base}/api/v1/me")).await;
    assert_eq!(me2["user_id"], me["user_id"]);

    // Bob's groups map to nothing: no access, a clear page.
    let mut bob = Browser::default();
    let cb = bob.through_idp(&base, pa, "bob", "pwd").await;
    refused(
        &mut bob,
        &db,
        t,
        &cb,
        StatusCode::FORBIDDEN,
        "none of your groups (marketing)",
    )
    .await;

    // Carol (soc-admins → tenant_admin): MFA is required; the IdP's claim
    // counts only when it asserts a second factor.
    let mut carol = Browser::default();
    let cb = carol.through_idp(&base, pa, "carol", "pwd").await;
    assert!(sign_in(&mut carol, &cb).await.contains("url=/mfa\""));
    let (_, me) = api(&mut carol, &format!("{base}/api/v1/me")).await;
    assert_eq!(me["mfa_verified"], false);
    let (st, _) = api(&mut carol, &format!("{base}/api/v1/sso/providers")).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "not before MFA");
    let mut carol2 = Browser::default();
    let cb = carol2.through_idp(&base, pa, "carol", "pwd,mfa").await;
    assert!(sign_in(&mut carol2, &cb).await.contains("url=/\""));
    let (st, list) = api(&mut carol2, &format!("{base}/api/v1/sso/providers")).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["has_client_secret"], true);
    assert!(!list.to_string().contains(SECRET), "the secret is never shown");

    // Wrong state.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, pa, "alice", "pwd").await;
    let forged = replace_param(&cb, "state", "forged-state");
    refused(
        &mut m,
        &db,
        t,
        &forged,
        StatusCode::UNAUTHORIZED,
        "unknown or already used state",
    )
    .await;
    // The real one still works... from this browser only.
    let mut thief = Browser::default();
    refused(
        &mut thief,
        &db,
        t,
        &cb,
        StatusCode::UNAUTHORIZED,
        "started in another browser",
    )
    .await;

    // RFC 9207: the callback names another issuer.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, pa, "alice", "pwd").await;
    let other = replace_param(&cb, "iss", &idp_b.issuer);
    refused(
        &mut m,
        &db,
        t,
        &other,
        StatusCode::UNAUTHORIZED,
        "comes from issuer",
    )
    .await;

    // Provider B's response delivered at provider A's callback.
    let mut m = Browser::default();
    let cb_b = m.through_idp(&base, pb, "alice", "pwd").await;
    let at_a = cb_b.replace(&format!("/sso/{pb}/"), &format!("/sso/{pa}/"));
    refused(
        &mut m,
        &db,
        t,
        &at_a,
        StatusCode::UNAUTHORIZED,
        "another identity provider",
    )
    .await;

    // A code injected into another login: the nonce does not match.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, pa, "alice", "pwd").await;
    tamper(&db, t, "nonce = 'another-login'").await;
    refused(&mut m, &db, t, &cb, StatusCode::UNAUTHORIZED, "nonce mismatch").await;

    // PKCE: the IdP requires it (every sign-in above sent it); a wrong
    // verifier fails the code exchange.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, pa, "alice", "pwd").await;
    tamper(
        &db,
        t,
        "pkce_verifier = 'wrong-verifier-wrong-verifier-wrong-verifier-00'",
    )
    .await;
    refused(
        &mut m,
        &db,
        t,
        &cb,
        StatusCode::UNAUTHORIZED,
        "refused the code exchange",
    )
    .await;

    // No PKCE verifier at the exchange: the IdP requires one.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, pa, "alice", "pwd").await;
    tamper(&db, t, "pkce_verifier = ''").await;
    refused(
        &mut m,
        &db,
        t,
        &cb,
        StatusCode::UNAUTHORIZED,
        "refused the code exchange",
    )
    .await;

    // The IdP refuses the authorization itself.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, pa, "alice", "pwd").await;
    let denied = replace_param(&replace_param(&cb, "code", ""), "error", "access_denied");
    refused(
        &mut m,
        &db,
        t,
        &denied,
        StatusCode::UNAUTHORIZED,
        "refused: access_denied",
    )
    .await;

    // Forged ID tokens: alg=none, and HS256 keyed by the client secret.
    let rp = RelyingParty::new();
    let cfg = ProviderConfig {
        issuer: idp_a.issuer.clone(),
        client_id: "vigil".into(),
        client_secret: Some(SECRET.into()),
        algorithms: vec!["RS256".into()],
        group_claim: "groups".into(),
        scopes: Vec::new(),
    };
    let now = SystemClock.now();
    let claims = json!({"iss": idp_a.issuer, "aud": "vigil", "sub": "mallory", "nonce": "n",
                        "iat": now.timestamp(), "exp": now.timestamp() + 300, "groups": ["soc-admins"]});
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    let err = rp.verify(&cfg, &none, "n", now).await.unwrap_err().to_string();
    assert!(err.contains("ID token refused"), "{err}");
    assert!(err.contains("unsigned"), "{err}");
    let signing_input = format!("{}.{}", b64(&json!({"alg": "HS256", "typ": "JWT"})), b64(&claims));
    let mac = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        m.update(signing_input.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    };
    let hs = format!("{signing_input}.{mac}");
    let err = rp.verify(&cfg, &hs, "n", now).await.unwrap_err().to_string();
    assert!(err.contains("not pinned") && err.contains("HS256"), "{err}");

    // Key rotation at the IdP: it now signs with key b (a still published).
    drop(idp_a);
    let _idp_a = start_idp(port_a, keys.path(), "b,a", &format!("{base}/sso/{pa}/callback")).await;
    let mut after = Browser::default();
    let cb = after.through_idp(&base, pa, "alice", "pwd").await;
    sign_in(&mut after, &cb).await;
}

pub(crate) async fn audits(db: &TestDb, t: TenantId, action: &str) -> i64 {
    let tx = db.store.begin_tenant(t).await.unwrap();
    let n = tx
        .query_one_raw(sea_orm::Statement::from_string(
            tx.get_database_backend(),
            format!("SELECT count(*) AS n FROM audit_events WHERE action = '{action}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    tx.commit().await.unwrap();
    n
}

/// Serves Vigil's router on `listener` with the given master key.
async fn serve(db: &TestDb, listener: tokio::net::TcpListener, master: MasterKey) -> String {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(
        db.store.clone(),
        Arc::new(SystemClock),
        base.clone(),
        master,
        Authorizer::load().await.unwrap(),
        PasswordPolicy::default(),
    )
    .with_limits(vigil::web::limits::Quotas {
        sign_in_per_minute: 0,
        failures_per_minute: 0,
    })
    .with_oidc(RelyingParty::with_refetch_every(Duration::ZERO));
    let router = web::router(state);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    base
}

/// Issue 12's account takeover, tried with a real IdP: an identity whose
/// e-mail is a local tenant admin's never becomes that admin unless the
/// IdP verified the address and the provider owns its domain; the admin's
/// role is never touched by another identity's login.
async fn oidc_account_linking(db: TestDb) {
    use vigil_orchestrator::ids::Email;
    let t = tenant(&db).await;
    let tx = db.store.begin_tenant(t).await.unwrap();
    let alice = identity::add_member(
        &tx,
        &SystemClock,
        &Actor::cli(),
        &Email::parse("alice@example.com").unwrap(),
        Role::TenantAdmin,
    )
    .await
    .unwrap()
    .user_id;
    let eve = identity::add_member(
        &tx,
        &SystemClock,
        &Actor::cli(),
        &Email::parse("eve@foreign.example").unwrap(),
        Role::AnalystRead,
    )
    .await
    .unwrap()
    .user_id;
    tx.commit().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let port = free_port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master = MasterKey::generate();
    let p = provider(&db, t, &master, "A", &format!("http://127.0.0.1:{port}")).await;
    let base = serve(&db, listener, master).await;
    let accounts = json!({
        "mallory": {"email": "alice@example.com", "email_verified": false, "groups": ["soc"]},
        "mallory-silent": {"email": "alice@example.com", "groups": ["soc-admins"]},
        "alice": {"email": "alice@example.com", "email_verified": true, "groups": ["soc-admins"]},
        "mallory-verified": {"email": "ALICE@example.com", "email_verified": true, "groups": ["soc"]},
        "eve": {"email": "eve@foreign.example", "email_verified": true, "groups": ["soc"]},
    });
    let _idp = start_idp_with(
        port,
        keys.path(),
        "a",
        &format!("{base}/sso/{p}/callback"),
        accounts,
    )
    .await;
    let alice_role = || async {
        vigil_orchestrator::identity::auth::role_in(&db.store, alice, t)
            .await
            .unwrap()
    };
    let who_am_i = |b: &mut Browser| {
        let url = format!("{base}/api/v1/me");
        let mut b = std::mem::take(b);
        async move {
            let (st, me) = api(&mut b, &url).await;
            assert_eq!(st, StatusCode::OK, "{me}");
            (b, me)
        }
    };

    // An unverified e-mail (false, or the claim left out): a separate
    // account, alice untouched; audited with both identities.
    for (n, who) in ["mallory", "mallory-silent"].into_iter().enumerate() {
        let mut m = Browser::default();
        let cb = m.through_idp(&base, p, who, "pwd").await;
        sign_in(&mut m, &cb).await;
        let (_, me) = who_am_i(&mut m).await;
        assert_ne!(me["user_id"], json!(alice.0), "{who} is not alice");
        assert_ne!(
            me["email"], "alice@example.com",
            "{who} does not hold alice's address"
        );
        assert!(me["email"].as_str().unwrap().ends_with(".sso.invalid"), "{me}");
        assert_eq!(
            alice_role().await,
            Some(Role::TenantAdmin),
            "alice's role is untouched"
        );
        assert_eq!(audits(&db, t, "sso.link_refused").await, n as i64 + 1);
    }
    assert_eq!(audits(&db, t, "membership.change").await, 0);

    // Extra scopes the tenant admin configured go to the IdP.
    let tx = db.store.begin_tenant(t).await.unwrap();
    sso::update_provider(
        &tx,
        &SystemClock,
        &MasterKey::generate(),
        &Actor::cli(),
        p,
        sso::ProviderUpdate {
            scopes: Some(vec!["profile".into(), "offline_access".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let auth = Browser::default().hop(&format!("{base}/sso/{p}/login")).await;
    let scope = reqwest::Url::parse(&auth)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert!(
        scope.split(' ').any(|s| s == "profile") && scope.contains("offline_access"),
        "{scope}"
    );

    // Alice herself: verified, in a domain the provider owns → linked.
    let mut a = Browser::default();
    let cb = a.through_idp(&base, p, "alice", "pwd").await;
    assert!(
        sign_in(&mut a, &cb).await.contains("url=/mfa\""),
        "a tenant admin steps up"
    );
    let (_, me) = who_am_i(&mut a).await;
    assert_eq!(me["user_id"], json!(alice.0));
    assert_eq!(audits(&db, t, "sso.linked").await, 1);
    assert_eq!(alice_role().await, Some(Role::TenantAdmin));

    // Verified and owned, but alice already has her identity at this
    // provider: another subject does not get her account.
    let mut m = Browser::default();
    let cb = m.through_idp(&base, p, "mallory-verified", "pwd").await;
    sign_in(&mut m, &cb).await;
    let (_, me) = who_am_i(&mut m).await;
    assert_ne!(me["user_id"], json!(alice.0));
    assert_eq!(alice_role().await, Some(Role::TenantAdmin));
    assert_eq!(audits(&db, t, "sso.link_refused").await, 3);

    // Verified, but in a domain the provider does not own: separate.
    let mut e = Browser::default();
    let cb = e.through_idp(&base, p, "eve", "pwd").await;
    sign_in(&mut e, &cb).await;
    let (_, me) = who_am_i(&mut e).await;
    assert_ne!(me["user_id"], json!(eve.0));
    assert_eq!(
        vigil_orchestrator::identity::auth::role_in(&db.store, eve, t)
            .await
            .unwrap(),
        Some(Role::AnalystRead)
    );
    assert_eq!(audits(&db, t, "sso.link_refused").await, 4);
    assert_eq!(audits(&db, t, "sso.linked").await, 1);
}

#[tokio::test]
async fn oidc_linking_sqlite() {
    oidc_account_linking(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn oidc_linking_postgres() {
    oidc_account_linking(TestDb::postgres().await).await;
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if !value.is_empty() {
            q.append_pair(name, value);
        }
    }
    u.to_string()
}

#[tokio::test]
async fn oidc_sqlite() {
    oidc_sign_in(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn oidc_postgres() {
    oidc_sign_in(TestDb::postgres().await).await;
}
