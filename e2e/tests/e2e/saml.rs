//! SAML 2.0 sign-in against a real IdP: Debian `simplesamlphp` (config in
//! e2e/idp/saml, certificates made per run with openssl), run with
//! `php -S`; Vigil's router in process. The happy path and the attacks on
//! the signed Response, each refused with a clear page and an audit entry.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use uuid::Uuid;
use vigil::authz::Authorizer;
use vigil::web::{self, AppState};
use vigil_orchestrator::audit::Actor;
use vigil_orchestrator::secrets::credentials::{MasterKey, PasswordPolicy};
use vigil_orchestrator::testkit::TestDb;
use vigil_orchestrator::{Role, SystemClock, TenantId, identity::sso};

use crate::sso::{Browser, api, free_port, refusals, tamper, tenant};

const WWW: &str = "/usr/share/simplesamlphp/www";

pub(crate) fn cert(dir: &Path, name: &str) {
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=vigil-test-idp"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs")
        .success();
    assert!(ok);
}

pub(crate) struct Idp {
    _child: tokio::process::Child,
    pub(crate) metadata: String,
}

/// SimpleSAMLphp signing with `certs/idp.{key,crt}`.
pub(crate) async fn start_idp(
    port: u16,
    certs: &Path,
    state: &Path,
    sp_entity: &str,
    other: &str,
    acs: &str,
) -> Idp {
    start_idp_with(port, certs, state, sp_entity, other, acs, 300, "").await
}

/// The same, with the assertions' lifetime in seconds (negative: expired
/// when made) and, if not empty, the AuthnContextClassRef it claims.
#[allow(clippy::too_many_arguments)]
async fn start_idp_with(
    port: u16,
    certs: &Path,
    state: &Path,
    sp_entity: &str,
    other: &str,
    acs: &str,
    lifetime: i64,
    authn_context: &str,
) -> Idp {
    assert!(
        Path::new(WWW).exists(),
        "run ./test.sh (it installs simplesamlphp)"
    );
    std::fs::create_dir_all(state.join("tmp")).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("idp/saml");
    let child = tokio::process::Command::new("php")
        .args(["-S", &format!("127.0.0.1:{port}"), "-t", WWW])
        .env("SIMPLESAMLPHP_CONFIG_DIR", &config)
        .env("IDP_BASE", format!("http://127.0.0.1:{port}/"))
        .env("IDP_STATE", state)
        .env("IDP_CERTS", certs)
        .env("SP_ENTITY", sp_entity)
        .env("SP_OTHER_ENTITY", other)
        .env("SP_ACS", acs)
        .env("SP_THIRD_ENTITY", format!("{acs}/third"))
        .env("SP_THIRD_ACS", format!("{acs}-elsewhere"))
        .env("ASSERTION_LIFETIME", lifetime.to_string())
        .env("IDP_AUTHN_CONTEXT", authn_context)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("php runs (./test.sh installs php-cli)");
    let url = format!("http://127.0.0.1:{port}/saml2/idp/metadata.php");
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            let metadata = r.text().await.unwrap();
            return Idp {
                _child: child,
                metadata,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the SAML IdP did not start");
}

fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let tail = &html[at..];
    let v = tail.split("value=\"").nth(1).unwrap();
    v[..v.find('"').unwrap()]
        .replace("&#x2B;", "+")
        .replace("&#x3D;", "=")
        .replace("&amp;", "&")
}

/// Through the IdP's login form to the auto-posting page: the ACS URL,
/// SAMLResponse and RelayState it would post.
async fn through_idp(b: &mut Browser, to_idp: &str, user: &str) -> (String, String, String) {
    let login = b.hop(to_idp).await;
    through_idp_login(b, &login, user).await
}

/// From the IdP's login page on: signs `user` in, returns where the IdP's
/// page posts, the SAMLResponse and the RelayState.
async fn through_idp_login(b: &mut Browser, login: &str, user: &str) -> (String, String, String) {
    let login = login.to_owned();
    let form = b.get(&login).await.text().await.unwrap();
    let auth_state = field(&form, "AuthState");
    let res = b
        .post(
            &login,
            &[
                ("username", user),
                ("password", &format!("{user}-pw")),
                ("AuthState", &auth_state),
            ],
        )
        .await;
    let page = res.text().await.unwrap();
    let action = page.split("action=\"").nth(1).unwrap();
    let action = action[..action.find('"').unwrap()].replace("&amp;", "&");
    (action, field(&page, "SAMLResponse"), field(&page, "RelayState"))
}

async fn start_login(b: &mut Browser, base: &str, provider: Uuid) -> String {
    b.hop(&format!("{base}/sso/{provider}/login")).await
}

fn decode(b64: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

fn encode(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The first `<prefix:Assertion ...>...</prefix:Assertion>` element.
fn assertion_of(xml: &str) -> (usize, usize) {
    let start = xml
        .find(":Assertion ")
        .map(|i| xml[..i].rfind('<').unwrap())
        .unwrap();
    let close = xml.find(":Assertion>").unwrap();
    let end = close + ":Assertion>".len();
    (start, end)
}

async fn post_acs(b: &mut Browser, acs: &str, resp: &str, relay: &str) -> reqwest::Response {
    b.post(acs, &[("SAMLResponse", resp), ("RelayState", relay)])
        .await
}

async fn refused(b: &mut Browser, db: &TestDb, t: TenantId, acs: &str, resp: &str, relay: &str, why: &str) {
    let before = refusals(db, t).await;
    let res = post_acs(b, acs, resp, relay).await;
    let status = res.status();
    let page = res.text().await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {page}");
    assert!(page.contains(why), "expected {why:?} in {page}");
    assert!(!b.jar.contains_key("vigil_session"));
    assert_eq!(refusals(db, t).await, before + 1, "audited: {why}");
}

async fn saml_sign_in(db: TestDb) {
    let t = tenant(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let (certs, other_certs, state) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("state"),
    );
    for d in [&certs, &other_certs, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    cert(&certs, "idp");
    cert(&other_certs, "idp");
    let port = free_port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let other_entity = format!("{base}/sso/other/metadata");

    // The IdP must know the SP's ACS, which names the provider, which needs
    // the IdP's metadata: start it with a placeholder SP, read its
    // metadata, create the provider, restart it with the real SP.
    let first = start_idp(
        port,
        &certs,
        &state,
        "urn:placeholder",
        &other_entity,
        "http://127.0.0.1:9/",
    )
    .await;
    let tx = db.store.begin_tenant(t).await.unwrap();
    let p = sso::create_saml_provider(
        &tx,
        &SystemClock,
        &Actor::cli(),
        sso::NewSamlProvider {
            name: "SimpleSAMLphp".into(),
            idp_metadata: first.metadata.clone(),
            group_attribute: "groups".into(),
            role_map: vec![
                ("soc".into(), Role::AnalystEdit),
                ("soc-admins".into(), Role::TenantAdmin),
            ],
            trust_idp_mfa: true,
            entity_id: None,
            domains: vec!["example.com".into()],
            email_authoritative: true,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    drop(first);
    let (sp_entity, acs) = (
        format!("{base}/sso/{}/metadata", p.id),
        format!("{base}/sso/{}/acs", p.id),
    );
    let _idp = start_idp(port, &certs, &state, &sp_entity, &other_entity, &acs).await;
    let state_app = AppState::new(
        db.store.clone(),
        Arc::new(SystemClock),
        base.clone(),
        MasterKey::generate(),
        Authorizer::load().await.unwrap(),
        PasswordPolicy::default(),
    )
    .with_limits(vigil::web::limits::Quotas {
        sign_in_per_minute: 0,
        failures_per_minute: 0,
    });
    let router = web::router(state_app);
    let _server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    // The SP's metadata, for the IdP's administrator.
    let md = reqwest::get(&sp_entity).await.unwrap().text().await.unwrap();
    assert!(
        md.contains(&format!("entityID=\"{sp_entity}\"")) && md.contains(&acs),
        "{md}"
    );

    // Alice: group `soc` → analyst_edit.
    let mut alice = Browser::default();
    let to_idp = start_login(&mut alice, &base, p.id).await;
    assert!(to_idp.contains("SAMLRequest="), "{to_idp}");
    let (action, resp, relay) = through_idp(&mut alice, &to_idp, "alice").await;
    assert_eq!(action, acs);
    let xml = decode(&resp);
    assert!(xml.contains("ds:Signature"), "the IdP signs: {xml}");
    let res = post_acs(&mut alice, &acs, &resp, &relay).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let (st, me) = api(&mut alice, &format!("{base}/api/v1/me")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["tenant"], serde_json::json!(t.0));
    let alice_id = me["user_id"].clone();
    let (st, _) = api(&mut alice, &format!("{base}/api/v1/cases")).await;
    assert_eq!(st, StatusCode::OK);
    // The same post again: the login is used up.
    let mut m = Browser::default();
    refused(
        &mut m,
        &db,
        t,
        &acs,
        &resp,
        &relay,
        "unknown or already used state",
    )
    .await;

    // Bob's group maps to nothing.
    let mut bob = Browser::default();
    let to_idp = start_login(&mut bob, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut bob, &to_idp, "bob").await;
    let before = refusals(&db, t).await;
    let res = post_acs(&mut bob, &acs, &resp, &relay).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("none of your groups (marketing)")
    );
    assert_eq!(refusals(&db, t).await, before + 1);

    // Carol (soc-admins → tenant_admin) must pass MFA: the IdP claims
    // only a password, so Vigil's own TOTP step-up follows.
    let mut carol = Browser::default();
    let to_idp = start_login(&mut carol, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut carol, &to_idp, "carol").await;
    let res = post_acs(&mut carol, &acs, &resp, &relay).await;
    assert!(res.text().await.unwrap().contains("url=/mfa\""));
    let (_, me) = api(&mut carol, &format!("{base}/api/v1/me")).await;
    assert_eq!(me["mfa_verified"], false);

    // Attacks on a genuine signed response (each with a fresh login, so
    // the RelayState and InResponseTo are right).
    type Attack = fn(&str) -> String;
    let one = "exactly one Assertion";
    let attacks: [(&str, Attack, &str); 11] = [
        ("stripped signatures", strip_signatures, "must be signed"),
        (
            "identity edited after signing",
            |x| x.replace("alice@example.com", "bob@example.com"),
            "must be signed",
        ),
        ("XSW1", xsw1, one),
        ("XSW2", xsw2, one),
        ("XSW3", xsw3, one),
        ("XSW4", xsw4, one),
        ("XSW5", xsw5, one),
        ("XSW6", xsw6, one),
        ("XSW7", xsw7, one),
        ("XSW8", xsw8, one),
        ("a DOCTYPE (entity expansion)", with_doctype, "document type"),
    ];
    for (_what, attack, why) in attacks {
        let mut m = Browser::default();
        let to_idp = start_login(&mut m, &base, p.id).await;
        let (_, resp, relay) = through_idp(&mut m, &to_idp, "alice").await;
        let forged = encode(&attack(&decode(&resp)));
        refused(&mut m, &db, t, &acs, &forged, &relay, why).await;
    }

    // The Response wrapper, unsigned around the genuinely signed Assertion
    // (issue 12): its Destination, Status, Issuer and InResponseTo are
    // checked too. First the control: unchanged, such a response signs in,
    // so each refusal below is for the edit it names.
    let mut m = Browser::default();
    let to_idp = start_login(&mut m, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut m, &to_idp, "alice").await;
    let unsigned = strip_response_signature(&decode(&resp));
    assert!(
        unsigned.contains("<ds:Signature"),
        "the assertion keeps its signature"
    );
    let res = post_acs(&mut m, &acs, &encode(&unsigned), &relay).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    type Edit = Box<dyn Fn(&str) -> String>;
    let acs_attr = format!("Destination=\"{acs}\"");
    let wrapper: Vec<(&str, Edit, &str)> = vec![
        (
            "another SP's Destination",
            Box::new({
                let acs_attr = acs_attr.clone();
                move |x: &str| x.replacen(&acs_attr, "Destination=\"https://other-sp.example/acs\"", 1)
            }),
            "addressed to https://other-sp.example/acs",
        ),
        (
            "no Destination",
            Box::new({
                let acs_attr = acs_attr.clone();
                move |x: &str| x.replacen(&acs_attr, "", 1)
            }),
            "must name its Destination",
        ),
        (
            "a failure Status",
            Box::new(|x: &str| x.replacen("status:Success", "status:Responder", 1)),
            "status urn:oasis:names:tc:SAML:2.0:status:Responder",
        ),
        (
            "a foreign Issuer",
            Box::new(|x: &str| {
                let (a, b) = (
                    x.find("<saml:Issuer>").unwrap(),
                    x.find("</saml:Issuer>").unwrap(),
                );
                format!("{}<saml:Issuer>https://evil.example/idp{}", &x[..a], &x[b..])
            }),
            "Issuer is https://evil.example/idp",
        ),
        (
            "another request's InResponseTo",
            Box::new(|x: &str| x.replacen("InResponseTo=\"", "InResponseTo=\"other-", 1)),
            "answers another request",
        ),
    ];
    for (what, edit, why) in wrapper {
        let mut m = Browser::default();
        let to_idp = start_login(&mut m, &base, p.id).await;
        let (_, resp, relay) = through_idp(&mut m, &to_idp, "alice").await;
        let forged = edit(&strip_response_signature(&decode(&resp)));
        assert_ne!(forged, strip_response_signature(&decode(&resp)), "{what}: edited");
        refused(&mut m, &db, t, &acs, &encode(&forged), &relay, why).await;
    }

    // Encodings libxml2 would honour: refused before any parsing. UTF-7
    // hides a second Assertion and a DOCTYPE from a text check.
    let hidden = "+ADw-saml:Assertion/+AD4-+ADw-+ACE-DOCTYPE x+AD4-";
    type Encode = fn(&str, &str) -> Vec<u8>;
    let encodings: [(&str, Encode, &str); 3] = [
        (
            "UTF-7 declared",
            |x, hidden| {
                let body = x.find("?>").map_or(x, |i| &x[i + 2..]);
                format!("<?xml version=\"1.0\" encoding=\"UTF-7\"?>{body}{hidden}").into_bytes()
            },
            "declares the encoding `utf-7`",
        ),
        (
            "UTF-16 with a byte-order mark",
            |x, _| {
                let mut out = vec![0xFF, 0xFE];
                out.extend(x.encode_utf16().flat_map(u16::to_le_bytes));
                out
            },
            "UTF-16 byte-order mark",
        ),
        (
            "UTF-16 without a mark",
            |x, _| x.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            "NUL byte",
        ),
    ];
    for (_what, enc, why) in encodings {
        let mut m = Browser::default();
        let to_idp = start_login(&mut m, &base, p.id).await;
        let (_, resp, relay) = through_idp(&mut m, &to_idp, "alice").await;
        let forged = base64::engine::general_purpose::STANDARD.encode(enc(&decode(&resp), hidden));
        refused(&mut m, &db, t, &acs, &forged, &relay, why).await;
    }

    // Comment injection in the NameID: mallory is
    // alice@example.com.evil.test; a comment after "alice@example.com"
    // leaves the signature valid (c14n drops comments). Vigil must read the
    // whole NameID, or refuse: never sign mallory in as alice.
    let mut m = Browser::default();
    let to_idp = start_login(&mut m, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut m, &to_idp, "mallory").await;
    let xml = decode(&resp);
    assert!(xml.contains(">alice@example.com.evil.test<"), "{xml}");
    let injected = encode(&xml.replace(
        ">alice@example.com.evil.test<",
        ">alice@example.com<!---->.evil.test<",
    ));
    let res = post_acs(&mut m, &acs, &injected, &relay).await;
    let status = res.status();
    let page = res.text().await.unwrap();
    if status == StatusCode::OK {
        let (_, me) = api(&mut m, &format!("{base}/api/v1/me")).await;
        assert_ne!(
            me["user_id"], alice_id,
            "comment injection signed mallory in as alice"
        );
        assert_ne!(me["email"], "alice@example.com");
    } else {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    }

    // Wrong audience: an assertion the IdP made for another SP (which posts
    // to the same ACS), fitted into a login of Vigil's.
    let other_sp = vigil_integrations::saml::Sp {
        entity_id: other_entity.clone(),
        acs_url: acs.clone(),
    };
    let mut m = Browser::default();
    let (resp, relay, _) = fitted(&mut m, &db, t, &base, p.id, &other_sp).await;
    assert!(
        decode(&resp).contains(&other_entity),
        "the IdP addressed the other SP"
    );
    refused(&mut m, &db, t, &acs, &resp, &relay, "udience").await;

    // Wrong recipient: an assertion made for an SP whose ACS is elsewhere.
    let third = vigil_integrations::saml::Sp {
        entity_id: format!("{acs}/third"),
        acs_url: format!("{acs}-elsewhere"),
    };
    let mut m = Browser::default();
    let (resp, relay, action) = fitted(&mut m, &db, t, &base, p.id, &third).await;
    assert_eq!(action, format!("{acs}-elsewhere"));
    refused(&mut m, &db, t, &acs, &resp, &relay, "is addressed to").await;

    // Another key: the IdP now signs with a key Vigil does not trust.
    drop(_idp);
    let _idp_b = start_idp(port, &other_certs, &state, &sp_entity, &other_entity, &acs).await;
    let mut m = Browser::default();
    let to_idp = start_login(&mut m, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut m, &to_idp, "alice").await;
    refused(&mut m, &db, t, &acs, &resp, &relay, "must be signed").await;

    // An expired assertion (NotOnOrAfter 400 s ago, beyond the 180 s skew).
    drop(_idp_b);
    let idp_old = start_idp_with(port, &certs, &state, &sp_entity, &other_entity, &acs, -400, "").await;
    let mut m = Browser::default();
    let to_idp = start_login(&mut m, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut m, &to_idp, "alice").await;
    refused(&mut m, &db, t, &acs, &resp, &relay, "expired").await;

    // The IdP asserts MFA (REFEDS MFA profile) and the tenant trusts it:
    // no local step-up.
    drop(idp_old);
    let mfa = "https://refeds.org/profile/mfa";
    let _idp_mfa = start_idp_with(port, &certs, &state, &sp_entity, &other_entity, &acs, 300, mfa).await;
    let mut carol = Browser::default();
    let to_idp = start_login(&mut carol, &base, p.id).await;
    let (_, resp, relay) = through_idp(&mut carol, &to_idp, "carol").await;
    assert!(decode(&resp).contains(mfa));
    let res = post_acs(&mut carol, &acs, &resp, &relay).await;
    assert!(res.text().await.unwrap().contains("url=/\""));
    let (_, me) = api(&mut carol, &format!("{base}/api/v1/me")).await;
    assert_eq!(me["mfa_verified"], true);
    let (st, _) = api(&mut carol, &format!("{base}/api/v1/sso/providers")).await;
    assert_eq!(st, StatusCode::OK, "a tenant admin, MFA by the IdP");

    // The replay cache: an assertion id is accepted once.
    let tx = db.store.begin_tenant(t).await.unwrap();
    sso::first_use_of_assertion(&tx, &SystemClock, p.id, "_replayed", None)
        .await
        .unwrap();
    let again = sso::first_use_of_assertion(&tx, &SystemClock, p.id, "_replayed", None).await;
    assert!(again.unwrap_err().to_string().contains("replay"));
    drop(tx);

    // New metadata (as when the IdP rotates its certificate), in an
    // EntitiesDescriptor beside another SP and another IdP, whose only SSO
    // binding is HTTP-POST: the provider picks its own entity and sends
    // the AuthnRequest by an auto-posted form.
    let md = p_metadata(&db, t, p.id).await;
    let update = |idp_metadata: String| {
        let db = &db;
        let pid = p.id;
        async move {
            let tx = db.store.begin_tenant(t).await.unwrap();
            let r = sso::update_provider(
                &tx,
                &SystemClock,
                &MasterKey::generate(),
                &Actor::cli(),
                pid,
                sso::ProviderUpdate {
                    idp_metadata: Some(idp_metadata),
                    ..Default::default()
                },
            )
            .await;
            if r.is_ok() {
                tx.commit().await.unwrap();
            }
            r
        }
    };
    let body = md.find("?>").map_or(md.as_str(), |i| &md[i + 2..]);
    let other_idp = body.replace(
        &format!("entityID=\"{}\"", p.issuer),
        "entityID=\"https://other-idp.example\"",
    );
    assert_ne!(other_idp, body);
    let post_only = {
        let mut out = String::new();
        let mut rest = body;
        while let Some(i) = rest.find("SingleSignOnService") {
            let end = i + rest[i..].find('>').unwrap();
            out.push_str(&rest[..i]);
            out.push_str(&rest[i..end].replace("bindings:HTTP-Redirect", "bindings:HTTP-POST"));
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    };
    assert!(
        !post_only
            .contains("bindings:HTTP-Redirect\" Location=\"http://127.0.0.1:{port}/saml2/idp/SSOService")
    );
    let entities = format!(
        "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">\
         <md:EntityDescriptor entityID=\"https://sp.other.example\"><md:SPSSODescriptor \
         protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:AssertionConsumerService \
         Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"https://sp.other.example/acs\" \
         index=\"0\"/></md:SPSSODescriptor></md:EntityDescriptor>{other_idp}{post_only}</md:EntitiesDescriptor>"
    );
    // Metadata of another entity is not this provider's.
    let e = update(other_idp.clone()).await.unwrap_err().to_string();
    assert!(e.contains("describes `https://other-idp.example`"), "{e}");
    update(entities).await.unwrap();
    let mut carol = Browser::default();
    let res = carol.get(&format!("{base}/sso/{}/login", p.id)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("form-action http://127.0.0.1:{port}")),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("/static/autopost.js") && !page.contains("<script>"),
        "{page}"
    );
    let action = page
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        action.starts_with(&format!("http://127.0.0.1:{port}/")),
        "{action}"
    );
    let (req, relay) = (field(&page, "SAMLRequest"), field(&page, "RelayState"));
    assert!(
        decode(&req).contains("AuthnRequest"),
        "a plain (not deflated) request"
    );
    let res = carol
        .post(&action, &[("SAMLRequest", &req), ("RelayState", &relay)])
        .await;
    assert!(
        res.status().is_redirection(),
        "the IdP takes the posted request: {}",
        res.status()
    );
    let login = reqwest::Url::parse(&action)
        .unwrap()
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap()
        .to_string();
    let (to, resp, relay_back) = through_idp_login(&mut carol, &login, "carol").await;
    assert_eq!((to.as_str(), relay_back.as_str()), (acs.as_str(), relay.as_str()));
    let res = post_acs(&mut carol, &acs, &resp, &relay_back).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let (_, me) = api(&mut carol, &format!("{base}/api/v1/me")).await;
    assert_eq!(me["email"], "carol@example.com");

    // Disabled: no sign-in starts, and the sessions it opened are over.
    let tx = db.store.begin_tenant(t).await.unwrap();
    sso::update_provider(
        &tx,
        &SystemClock,
        &MasterKey::generate(),
        &Actor::cli(),
        p.id,
        sso::ProviderUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // (this app runs no guard cache: the deleted session is gone at once)
    let (st, _) = api(&mut carol, &format!("{base}/api/v1/me")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the provider's sessions ended");
    let res = Browser::default()
        .get(&format!("{base}/sso/{}/login", p.id))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("disabled"));
}

/// A real assertion the IdP made for `sp`, fitted into a login of Vigil's
/// (the login's request id set to the one the IdP answers): the response,
/// Vigil's RelayState, and where the IdP meant it to go.
async fn fitted(
    m: &mut Browser,
    db: &TestDb,
    t: TenantId,
    base: &str,
    p: Uuid,
    sp: &vigil_integrations::saml::Sp,
) -> (String, String, String) {
    let to_idp = start_login(m, base, p).await;
    let relay = reqwest::Url::parse(&to_idp)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .unwrap()
        .1
        .into_owned();
    let (out, id) =
        vigil_integrations::saml::authn_request(&p_metadata(db, t, p).await, None, sp, "x").unwrap();
    let vigil_integrations::saml::Outgoing::Redirect(url) = out else {
        panic!("the test IdP offers HTTP-Redirect")
    };
    tamper(db, t, &format!("nonce = '{id}'")).await;
    let (action, resp, _) = through_idp(m, &url, "alice").await;
    (resp, relay, action)
}

async fn p_metadata(db: &TestDb, t: TenantId, p: Uuid) -> String {
    let tx = db.store.begin_tenant(t).await.unwrap();
    sso::saml_metadata(&tx, p).await.unwrap()
}

fn with_doctype(xml: &str) -> String {
    let doctype = "<!DOCTYPE r [<!ENTITY e \"x\">]>";
    match xml.find("?>") {
        Some(i) if xml.starts_with("<?xml") => format!("{}{doctype}{}", &xml[..i + 2], &xml[i + 2..]),
        _ => format!("{doctype}{xml}"),
    }
}

/// Removes the Response's own signature (the first one, before the
/// Assertion), keeping the Assertion's.
fn strip_response_signature(xml: &str) -> String {
    let (assertion, _) = assertion_of(xml);
    let a = xml.find("<ds:Signature").unwrap();
    assert!(a < assertion, "the IdP signs the Response too");
    let b = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    format!("{}{}", &xml[..a], &xml[b..])
}

fn strip_signatures(xml: &str) -> String {
    let mut out = xml.to_owned();
    while let Some(a) = out.find("<ds:Signature") {
        let b = out.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        out.replace_range(a..b, "");
    }
    out
}

/// The signed assertion's span, and two evil versions of it (the
/// identity swapped for bob's, a new ID): without a signature, and keeping
/// the genuine assertion's (now wrong) signature.
struct Parts<'a> {
    xml: &'a str,
    a: usize,
    b: usize,
    evil: String,
    evil_signed: String,
}

fn parts(xml: &str) -> Parts<'_> {
    let (a, b) = assertion_of(xml);
    let evil_signed = xml[a..b]
        .replace("alice@example.com", "bob@example.com")
        .replacen(" ID=\"", " ID=\"evil", 1);
    Parts {
        xml,
        a,
        b,
        evil: strip_signatures(&evil_signed),
        evil_signed,
    }
}

impl Parts<'_> {
    fn genuine(&self) -> &str {
        &self.xml[self.a..self.b]
    }

    /// The document with the signed assertion replaced.
    fn with(&self, replacement: &str) -> String {
        format!("{}{replacement}{}", &self.xml[..self.a], &self.xml[self.b..])
    }

    /// The Response's start tag, its Issuer, and the rest.
    fn response_head(&self) -> (usize, usize, usize) {
        let open = self.xml.find("<samlp:Response").unwrap();
        let head_end = open + self.xml[open..].find('>').unwrap() + 1;
        let issuer_end = self.xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
        (open, head_end, issuer_end)
    }
}

/// Inserts `inner` just before the closing tag of `element`.
fn inside_end(element: &str, inner: &str) -> String {
    let close = element.rfind("</").unwrap();
    format!("{}{inner}{}", &element[..close], &element[close..])
}

/// An evil Response (new ID, its own Issuer, the evil assertion) that
/// carries the genuine signed Response as `carry` makes it.
fn evil_response(xml: &str, carry: fn(&str) -> String) -> String {
    let p = parts(xml);
    let (open, head_end, issuer_end) = p.response_head();
    let head = xml[open..head_end].replacen(" ID=\"", " ID=\"evil", 1);
    format!(
        "{}{head}{}{}{}</samlp:Response>",
        &xml[..open],
        &xml[head_end..issuer_end],
        carry(&xml[open..]),
        p.evil
    )
}

/// XSW1: the genuine Response inside the evil Response's Signature.
fn xsw1(xml: &str) -> String {
    evil_response(xml, |genuine| {
        format!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Object>{genuine}</ds:Object></ds:Signature>"
        )
    })
}

/// XSW2: as XSW1, with the genuine Response a plain sibling before the
/// evil assertion (a detached signature).
fn xsw2(xml: &str) -> String {
    evil_response(xml, str::to_owned)
}

/// XSW3: the evil assertion before the genuine one.
fn xsw3(xml: &str) -> String {
    let p = parts(xml);
    p.with(&format!("{}{}", p.evil, p.genuine()))
}

/// XSW4: the evil assertion wraps the genuine one.
fn xsw4(xml: &str) -> String {
    let p = parts(xml);
    p.with(&inside_end(&p.evil, p.genuine()))
}

/// XSW5: the evil assertion keeps the copied signature; the genuine one
/// moves to the end of the Response.
fn xsw5(xml: &str) -> String {
    let p = parts(xml);
    inside_end(&p.with(&p.evil_signed), p.genuine())
}

/// XSW6: the evil assertion keeps the copied signature, and the genuine
/// assertion sits inside that signature.
fn xsw6(xml: &str) -> String {
    let p = parts(xml);
    let sig_end = p.evil_signed.find("</ds:Signature>").unwrap();
    let evil = format!(
        "{}<ds:Object>{}</ds:Object>{}",
        &p.evil_signed[..sig_end],
        p.genuine(),
        &p.evil_signed[sig_end..]
    );
    p.with(&evil)
}

/// XSW7: the genuine assertion in an Extensions element, the evil one in
/// its place.
fn xsw7(xml: &str) -> String {
    let p = parts(xml);
    let replaced = p.with(&p.evil);
    let at = replaced.find("<samlp:Status").unwrap();
    format!(
        "{}<samlp:Extensions>{}</samlp:Extensions>{}",
        &replaced[..at],
        p.genuine(),
        &replaced[at..]
    )
}

/// XSW8: the evil assertion carries a Signature whose Object holds the
/// genuine assertion without its signature.
fn xsw8(xml: &str) -> String {
    let p = parts(xml);
    let inner = format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Object>{}</ds:Object></ds:Signature>",
        strip_signatures(p.genuine())
    );
    p.with(&inside_end(&p.evil, &inner))
}

#[tokio::test]
async fn saml_sqlite() {
    saml_sign_in(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn saml_postgres() {
    saml_sign_in(TestDb::postgres().await).await;
}
