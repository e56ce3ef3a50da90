//! Issue 13: hostile input never drops a connection, never loses an alert,
//! never answers outside the documented error shape. One regression test
//! per finding, then a sweep of every route × principal × mutations.

use super::*;
use serde_json::{Value, json};
use vigil_orchestrator::pipeline::ingest::sign;

/// An answer's status, body and headers, with the checks every error
/// answer must pass: the error shape on API paths, security headers.
async fn checked(app: &App, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let path = req.uri().path().to_owned();
    let what = format!("{} {}", req.method(), req.uri());
    let (s, body, h) = app.send(req).await;
    assert!(!s.is_server_error(), "{what} → {s} {body}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}: security headers");
    let v = if path.starts_with("/api/") && s.is_client_error() {
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what} → {s} is not JSON: {body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body}"));
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{what} → {s}: not the error shape: {body}"
        );
        v
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    (s, v, h)
}

fn req(
    caller: &Caller,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    match caller {
        Caller::Anonymous => {}
        Caller::Token { token, .. } => b = b.header(header::AUTHORIZATION, format!("Bearer {token}")),
        Caller::Session { cookie, csrf, .. } => {
            b = b
                .header(header::COOKIE, format!("vigil_session={cookie}"))
                .header("x-csrf-token", csrf.as_str());
        }
    }
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

/// A webhook integration: its id and signing secret.
async fn webhook(app: &App, engineer: &Caller) -> (String, String) {
    let (s, res) = app
        .call(
            engineer,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"kind": "webhook", "name": format!("hook-{}", uuid::Uuid::new_v4().simple())})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    let v: Value = serde_json::from_str(&res).unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["signing_secret"].as_str().unwrap().to_owned(),
    )
}

fn delivery(app: &App, hook: &(String, String), body: &str) -> Request<Body> {
    let now = app.clock.now().timestamp().to_string();
    Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/ingest/{}", hook.0))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-vigil-timestamp", &now)
        .header(
            "x-vigil-signature",
            sign(hook.1.as_bytes(), &now, body.as_bytes()),
        )
        .body(Body::from(body.to_owned()))
        .unwrap()
}

pub(super) async fn hostile_input_regressions(backend: Backend) {
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let engineer = Caller::Token {
        role: Role::SecurityEngineer,
        token: app.token(a, Role::SecurityEngineer).await,
    };
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;

    // 1. Offsets past i64 (and past 2^53) on every list: 422, not a panic.
    for (list, who) in [
        ("/api/v1/cases", &engineer),
        ("/api/v1/gates", &engineer),
        ("/api/v1/audit", &admin),
        ("/api/v1/alerts", &engineer),
    ] {
        for offset in ["9223372036854775808", "9007199254740993", "18446744073709551615"] {
            let (s, v, _) = checked(
                &app,
                req(who, Method::GET, &format!("{list}?offset={offset}"), None, ""),
            )
            .await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{list} offset={offset}: {v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("offset"), "{v}");
        }
        let (s, _, _) = checked(
            &app,
            req(
                who,
                Method::GET,
                &format!("{list}?offset=9007199254740992"),
                None,
                "",
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{list}: 2^53 is allowed");
        for bad in [
            "offset=18446744073709551616",
            "limit=-1",
            "limit=abc",
            "limit=1&limit=2",
            "offset=%FF",
        ] {
            let (s, _, _) = checked(&app, req(who, Method::GET, &format!("{list}?{bad}"), None, "")).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{list}?{bad}");
        }
    }

    // 2 + 3. A signed delivery whose alerts carry NUL in the host and user
    // names, and a Graylog message with line breaks as the title of the
    // case it opens: accepted and stored, on both backends.
    let hook = webhook(&app, &engineer).await;
    let body = json!([
        {"class_uid": 2004, "finding_info": {"uid": "nul-1", "title": "NUL\u{0}host"},
         "device": {"hostname": "ws\u{0}042"}, "actor": {"user": {"name": "ali\u{0}ce"}}},
        {"event_definition_id": "def-9", "event": {"id": "gl-nl", "event_definition_id": "def-9",
         "message": "sshd[811]: Failed password\nfor root\tfrom 203.0.113.7", "source": "bastion-1"}}
    ])
    .to_string();
    let (s, v, _) = checked(&app, delivery(&app, &hook, &body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let (s, v, _) = checked(&app, req(&engineer, Method::GET, "/api/v1/alerts", None, "")).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.to_string();
    assert!(
        text.contains("ws\u{FFFD}042"),
        "the host is stored, NUL replaced: {text}"
    );
    assert!(
        text.contains(r"ws\\u0000042"),
        "the raw alert keeps the escape: {text}"
    );
    let (_, cases, _) = checked(&app, req(&engineer, Method::GET, "/api/v1/cases", None, "")).await;
    let titles: Vec<&str> = cases["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains(&"sshd[811]: Failed password for root from 203.0.113.7"),
        "{titles:?}"
    );
    assert!(
        titles.iter().all(|t| !t.chars().any(char::is_control)),
        "{titles:?}"
    );

    // NUL where a person types: a precise 422 (or stored), never a 500.
    let nul_inputs = [
        (
            &admin,
            Method::POST,
            "/api/v1/sso/providers".to_owned(),
            json!({"name": "x\u{0}y", "issuer": "https://idp.example", "client_id": "c", "role_map": {"g": "analyst_read"}}),
        ),
        (
            &engineer,
            Method::POST,
            "/api/v1/iocs/import".to_owned(),
            json!({"format": "csv", "content": "ip,203.0.113.\u{0}9\nip,\"203.0.113.10\",\"quoted, with a comma\""}),
        ),
        (
            &engineer,
            Method::PUT,
            "/api/v1/settings/correlation".to_owned(),
            json!({"window_hours": 24, "min_weight": 0.5, "weights": {}, "ignore": [{"kind": "ip", "value": "10.0.0.\u{0}1"}]}),
        ),
        (
            &engineer,
            Method::POST,
            "/api/v1/cases".to_owned(),
            json!({"title": "a\u{0}b"}),
        ),
    ];
    for (who, m, path, body) in nul_inputs {
        let (s, v, _) = checked(
            &app,
            req(who, m.clone(), &path, Some("application/json"), body.to_string()),
        )
        .await;
        assert!(
            s.is_success() || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{m} {path} → {s} {v}"
        );
    }
    let (_, case, _) = checked(
        &app,
        req(
            &engineer,
            Method::POST,
            "/api/v1/cases",
            Some("application/json"),
            json!({"title": "gate host"}).to_string(),
        ),
    )
    .await;
    let case = case["id"].as_str().unwrap().to_owned();
    let (s, v, _) = checked(
        &app,
        req(
            &engineer,
            Method::POST,
            &format!("/api/v1/cases/{case}/gates"),
            Some("application/json"),
            json!({"kind": "ticket_create", "payload": {"summary": "n\u{0}ul"}}).to_string(),
        ),
    )
    .await;
    assert!(
        s.is_success() || s == StatusCode::UNPROCESSABLE_ENTITY,
        "gate payload: {s} {v}"
    );

    // 4. Extractor refusals in the error shape: bad JSON, wrong types,
    // unknown and duplicate fields, a wrong Content-Type, a bad path.
    let bodies: [(&str, &str, StatusCode); 6] = [
        ("application/json", "{\"title\": ", StatusCode::BAD_REQUEST),
        (
            "application/json",
            "{\"title\": 5}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "application/json",
            "{\"title\": \"t\", \"evil\": 1}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "application/json",
            "{\"title\": \"t\", \"title\": \"u\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "text/plain",
            "{\"title\": \"t\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "application/json",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (ct, body, want) in bodies {
        let (s, v, _) = checked(
            &app,
            req(&engineer, Method::POST, "/api/v1/cases", Some(ct), body),
        )
        .await;
        assert_eq!(s, want, "{ct} {body}: {v}");
    }
    let (s, v, _) = checked(
        &app,
        req(
            &admin,
            Method::PUT,
            "/api/v1/settings/sessions",
            Some("application/json"),
            json!({"idle_minutes": 30, "absolute_hours": 12, "x": 1}).to_string(),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown field: {v}");
    let (s, v, _) = checked(
        &app,
        req(
            &admin,
            Method::POST,
            "/api/v1/sso/providers",
            Some("application/json"),
            json!({"issuer": "https://i.example", "role_map": {}}).to_string(),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("name"),
        "names the missing field: {v}"
    );
    let (s, _, h) = checked(&app, req(&engineer, Method::DELETE, "/api/v1/cases", None, "")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.contains_key("x-frame-options"));
    let (s, _, _) = checked(
        &app,
        req(&engineer, Method::GET, "/api/v1/cases/%FF%FE", None, ""),
    )
    .await;
    assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND, "{s}");

    // 5. Amplification: one alert with 60,000 addresses keeps 1,000
    // observables and says how many it dropped; a page of alerts is
    // bounded in bytes.
    let ips: Vec<String> = (0..60_000)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let big =
        json!({"class_uid": 2004, "finding_info": {"uid": "big-1", "title": "many"}, "ips": ips}).to_string();
    assert!(big.len() < 1 << 20);
    let (s, v, _) = checked(&app, delivery(&app, &hook, &big)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (_, v, _) = checked(
        &app,
        req(&engineer, Method::GET, "/api/v1/alerts?limit=1", None, ""),
    )
    .await;
    let first = &v["items"][0];
    assert_eq!(
        first["observables"].as_array().unwrap().len(),
        vigil_orchestrator::pipeline::ingest::MAX_OBSERVABLES_PER_ALERT
    );
    assert_eq!(first["observables_truncated"], 59_000);
    for _ in 0..3 {
        let (s, _, _) = checked(
            &app,
            delivery(
                &app,
                &hook,
                &big.replace("big-1", &uuid::Uuid::new_v4().to_string()),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    // The per-delivery budget: 60 alerts of 1,000 addresses each keep
    // 50,000 observables in all; the last ten keep none and say so.
    let alerts: Vec<Value> = (0..60)
        .map(|n| {
            let ips: Vec<String> = (0..1000).map(|i| format!("172.{n}.{}.{}", i >> 8, i & 255)).collect();
            json!({"class_uid": 2004, "finding_info": {"uid": format!("budget-{n}"), "title": "budget"}, "ips": ips})
        })
        .collect();
    let body = Value::Array(alerts).to_string();
    assert!(body.len() < 1 << 20, "{}", body.len());
    let (s, v, _) = checked(&app, delivery(&app, &hook, &body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["accepted"], 60);
    // (pages end early at their byte bound: follow next_offset)
    let (mut items, mut offset) = (Vec::new(), 0);
    while items.len() < 60 {
        let uri = format!("/api/v1/alerts?limit={}&offset={offset}", 60 - items.len());
        let (_, v, _) = checked(&app, req(&engineer, Method::GET, &uri, None, "")).await;
        let page = v["items"].as_array().unwrap().clone();
        assert!(!page.is_empty());
        offset += page.len();
        items.extend(page);
    }
    let kept: usize = items
        .iter()
        .map(|a| a["observables"].as_array().unwrap().len())
        .sum();
    let dropped: u64 = items
        .iter()
        .map(|a| a["observables_truncated"].as_u64().unwrap())
        .sum();
    assert_eq!(
        (kept, dropped),
        (
            vigil_orchestrator::pipeline::ingest::MAX_OBSERVABLES_PER_DELIVERY,
            10_000
        )
    );
    // Any body over 2 MiB: 413 in the shape, before any handler.
    let huge = "x".repeat(vigil::web::error::MAX_BODY + 1);
    let (s, v, _) = checked(
        &app,
        req(
            &engineer,
            Method::POST,
            "/api/v1/cases",
            Some("application/json"),
            huge,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    let (s, body, _) = app
        .send(req(&engineer, Method::GET, "/api/v1/alerts?limit=500", None, ""))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.len() <= vigil::web::limits::MAX_ALERT_PAGE_BYTES + 64 * 1024,
        "{} bytes",
        body.len()
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["next_offset"].is_u64(),
        "a short page says where the next starts"
    );
}

pub(super) async fn rate_limits(backend: Backend) {
    let app = app_with(
        backend,
        vigil::web::limits::Quotas {
            sign_in_per_minute: 5,
            failures_per_minute: 3,
        },
    )
    .await;
    let a = app.tenant("A").await;
    let engineer = Caller::Token {
        role: Role::SecurityEngineer,
        token: app.token(a, Role::SecurityEngineer).await,
    };
    let audits = |action: &'static str| {
        let app = &app;
        async move {
            count_in(
                app,
                None,
                &format!("SELECT COUNT(*) AS n FROM audit_events WHERE action = '{action}'"),
            )
            .await
        }
    };
    let rejected = "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'ingest.rejected'";
    // Sign-in: five attempts, then 429 with Retry-After, nothing audited.
    // (each attempt another address: the per-account lockout is not the subject)
    let login = |i: usize| {
        Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "email=x{i}%40y.example&password=wrong+password"
            )))
            .unwrap()
    };
    for i in 0..5 {
        assert_eq!(app.send(login(i)).await.0, StatusCode::UNAUTHORIZED);
    }
    let failures = audits("login.failure").await;
    for i in 0..200 {
        let (s, _, h) = app.send(login(i + 5)).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert!(h.contains_key(header::RETRY_AFTER));
    }
    assert_eq!(
        audits("login.failure").await,
        failures,
        "refusals beyond the limit write no row each"
    );
    // Bad API tokens: three 401s, then the address is refused (a good
    // token from it too, for a while).
    let bad = Caller::Token {
        role: Role::AnalystRead,
        token: "vgt_not-a-token".into(),
    };
    for _ in 0..3 {
        assert_eq!(
            app.call(&bad, Method::GET, "/api/v1/cases", None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (s, _, _) = checked(&app, req(&bad, Method::GET, "/api/v1/cases", None, "")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, _, _) = checked(&app, req(&engineer, Method::GET, "/api/v1/cases", None, "")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "the penalty is the address's");
    // Bad webhook signatures: three audited refusals, then 429, unaudited.
    let before = count_in(&app, Some(a), rejected).await;
    assert_eq!(before, 0);
    // (the token penalty is over for another address: use a second router)
    let other =
        web::router(app.state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 2], 40000))));
    let hook = {
        let app2 = App {
            router: other.clone(),
            state: app.state.clone(),
            clock: app.clock.clone(),
            key: MasterKey::from_hex(&app.key.to_hex()).unwrap(),
            _db: None,
        };
        webhook(&app2, &engineer).await
    };
    let forged = || {
        let now = app.clock.now().timestamp().to_string();
        Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/ingest/{}", hook.0))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-vigil-timestamp", &now)
            .header("x-vigil-signature", "sha256=00")
            .body(Body::from("{\"a\": 1}"))
            .unwrap()
    };
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let res = other.clone().oneshot(forged()).await.unwrap();
        statuses.push(res.status());
    }
    assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3]);
    assert!(
        statuses[3..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let after = count_in(&app, Some(a), rejected).await;
    assert_eq!(
        after, 4,
        "only the refusals within the limit (and the one crossing it) are audited one by one"
    );
    // One summary row per (kind, address).
    let rows = app
        .state
        .limits
        .flush(&app.state.store, app.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(rows, 3, "sign-in, token and signature refusals");
    assert_eq!(audits("ratelimit.refused").await, 3);
    assert_eq!(
        app.state
            .limits
            .flush(&app.state.store, app.clock.as_ref())
            .await
            .unwrap(),
        0
    );
}

/// Rows of a tenant a write could leave behind.
const ROWS: &str = "SELECT (SELECT COUNT(*) FROM cases) + (SELECT COUNT(*) FROM gates) + (SELECT COUNT(*) FROM outbox) \
    + (SELECT COUNT(*) FROM integrations) + (SELECT COUNT(*) FROM integration_scopes) + (SELECT COUNT(*) FROM credentials) \
    + (SELECT COUNT(*) FROM alerts) + (SELECT COUNT(*) FROM iocs) + (SELECT COUNT(*) FROM drafts) \
    + (SELECT COUNT(*) FROM sso_providers) + (SELECT COUNT(*) FROM memberships) + (SELECT COUNT(*) FROM api_tokens) \
    + (SELECT COUNT(*) FROM steps) + (SELECT COUNT(*) FROM case_alerts) AS n";

/// Every route × principal × a library of mutations: no 5xx, the error
/// shape on every API refusal, security headers on every answer, no write
/// on a refusal.
pub(super) async fn hostile_sweep(backend: Backend) {
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let mut callers = vec![Caller::Anonymous];
    for role in TENANT_ROLES {
        callers.push(Caller::Token {
            role,
            token: app.token(a, role).await,
        });
    }
    callers.push(app.session(Some(a), Role::TenantAdmin, true).await);
    callers.push(app.session(Some(a), Role::AnalystEdit, false).await);
    callers.push(app.session(None, Role::PlatformAdmin, true).await);
    let ids = [
        "not-a-uuid".to_owned(),
        "%00".to_owned(),
        "%FF%FE".to_owned(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "a".repeat(4000),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "%E2%80%AE".to_owned(),
    ];
    let queries = [
        "",
        "?limit=0",
        "?limit=501",
        "?limit=-1",
        "?offset=99999999999999999999999",
        "?state=%00",
        "?state=open&state=closed",
        "?case=not-a-uuid",
        "?limit=1e3",
    ];
    let bodies: [(&str, String); 9] = [
        ("application/json", "{}".into()),
        ("application/json", "null".into()),
        ("application/json", "[]".into()),
        (
            "application/json",
            "{\"name\": \"\\u0000\", \"title\": \"\\u0000\", \"kind\": \"\\u0000\"}".into(),
        ),
        (
            "application/json",
            "{\"limit\": 1e999, \"quorum\": 18446744073709551616, \"window_hours\": -1}".into(),
        ),
        (
            "application/json",
            format!("{{\"name\": \"{}\"}}", "x".repeat(100_000)),
        ),
        ("application/json", "\u{feff}{}".into()),
        (
            "application/x-www-form-urlencoded",
            "csrf=x&code=%00&email=%FF".into(),
        ),
        ("application/xml", "<x/>".into()),
    ];
    // Short by default (each mutation once per route, the principals taking
    // turns); VIGIL_SWEEP_FULL=1 tries every principal with every mutation.
    let full = std::env::var("VIGIL_SWEEP_FULL").is_ok_and(|v| v == "1");
    let (_, table) = web::routes();
    let mut entries: Vec<_> = table.keys().cloned().collect();
    entries.sort_by_key(|(m, p)| (p.to_string(), m.to_string()));
    let mut n = 0;
    for (method, path) in entries {
        if path == "/logout" {
            continue;
        }
        let templated = path.contains('{');
        let mut mutations: Vec<(String, Option<(&str, String)>)> = Vec::new();
        for id in ids.iter().take(if templated { ids.len() } else { 1 }) {
            let p = ["{token}", "{id}", "{scope}", "{user_id}", "{integration_id}"]
                .iter()
                .fold(path.to_owned(), |p, k| p.replace(k, id));
            if method == Method::GET {
                for q in &queries {
                    mutations.push((format!("{p}{q}"), None));
                }
            } else {
                for (ct, body) in &bodies {
                    mutations.push((p.clone(), Some((*ct, body.clone()))));
                }
            }
        }
        // A refused write writes nothing: the tenant's rows (audit aside:
        // some refusals are audited by design) are the same after it.
        let send = |caller: &Caller, (uri, body): &(String, Option<(&str, String)>)| {
            let r = match body {
                None => req(caller, method.clone(), uri, None, ""),
                Some((ct, b)) => req(caller, method.clone(), uri, Some(ct), b.clone()),
            };
            let (app, method) = (&app, method.clone());
            async move {
                let write = method != Method::GET;
                let before = if write {
                    count_in(app, Some(a), ROWS).await
                } else {
                    0
                };
                let (s, v, _) = checked(app, r).await;
                if write && !s.is_success() && !s.is_redirection() {
                    assert_eq!(
                        count_in(app, Some(a), ROWS).await,
                        before,
                        "{method} refused with {s} but wrote: {v}"
                    );
                }
            }
        };
        for (i, m) in mutations.iter().enumerate() {
            if full {
                for caller in &callers {
                    send(caller, m).await;
                    n += 1;
                }
            } else {
                send(&callers[i % callers.len()], m).await;
                n += 1;
            }
        }
        // Every principal at least once on every route, with the plain form.
        if !full {
            for caller in &callers {
                send(caller, &mutations[0]).await;
                n += 1;
            }
        }
    }
    assert!(n > 2_000, "{n} requests");
}
