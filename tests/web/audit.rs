//! The audit export over HTTP: streamed, verifiable, for the tenant admin
//! only, refusals in the error shape; every audit event carries the
//! request id the response names.

use super::*;

async fn audit_export_over_http(backend: Backend) {
    use serde_json::{Value, json};
    use vigil_orchestrator::audit::export;
    let app = app(backend).await;
    let (a, b) = (app.tenant("A").await, app.tenant("B").await);
    let admin = Caller::Token {
        role: Role::TenantAdmin,
        token: app.token(a, Role::TenantAdmin).await,
    };
    let analyst = Caller::Token {
        role: Role::AnalystEdit,
        token: app.token(a, Role::AnalystEdit).await,
    };
    let other = Caller::Token {
        role: Role::TenantAdmin,
        token: app.token(b, Role::TenantAdmin).await,
    };
    // Some events in A's chain, one with a request id the caller chose.
    for i in 0..30 {
        let (s, body) = app
            .call(
                &analyst,
                Method::POST,
                "/api/v1/cases",
                Some(json!({"title": format!("Case {i}"), "severity": "low"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let Caller::Token { token, .. } = &analyst else {
        unreachable!()
    };
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/cases")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req-from-proxy.42")
        .body(Body::from(json!({"title": "Traced"}).to_string()))
        .unwrap();
    let (s, _, h) = app.send(req).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(h["x-request-id"], "req-from-proxy.42");
    // A hostile request id is replaced by one of Vigil's own.
    let req = Request::builder()
        .uri("/healthz")
        .header("x-request-id", "a b\tc<script>")
        .body(Body::empty())
        .unwrap();
    let (_, _, h) = app.send(req).await;
    let own = h["x-request-id"].to_str().unwrap();
    assert!(
        own.len() == 32 && own.bytes().all(|c| c.is_ascii_hexdigit()),
        "{own}"
    );

    // JSON Lines: the whole chain, verifiable.
    let Caller::Token { token: at, .. } = &admin else {
        unreachable!()
    };
    let get = |path: &str, token: &str| {
        Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, body, h) = app.send(get("/api/v1/audit/export?format=jsonl", at)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(h[header::CONTENT_TYPE], "application/x-ndjson");
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains(".jsonl")
    );
    let r = export::verify(body.as_bytes(), None, None).unwrap();
    assert!(r.ok(), "{r:?}");
    let opened = body
        .lines()
        .filter(|l| l.contains("\"action\":\"case.open\""))
        .count();
    assert_eq!(opened, 31, "30 + the traced case");
    let traced: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["request_id"] == "req-from-proxy.42")
        .collect();
    assert_eq!(traced.len(), 1, "the event carries the request's id");
    assert_eq!(traced[0]["action"], "case.open");
    // The export itself is audited, before it is read: each export holds
    // its own event.
    assert_eq!(body.matches("\"action\":\"audit.export\"").count(), 1);
    let (_, body2, _) = app.send(get("/api/v1/audit/export", at)).await;
    assert_eq!(body2.matches("\"action\":\"audit.export\"").count(), 2);
    assert_eq!(
        export::verify(body2.as_bytes(), None, None).unwrap().events,
        r.events + 1
    );

    // CSV for people.
    let (s, csv_body, h) = app.send(get("/api/v1/audit/export?format=csv", at)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert!(csv_body.starts_with("record,seq,at,actor"), "{csv_body}");

    // A range: nothing before it, nothing after it.
    let (s, body, _) = app
        .send(get("/api/v1/audit/export?from=2000-01-01&to=2000-01-02", at))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(export::verify(body.as_bytes(), None, None).unwrap().events, 0);

    // Refusals, in the error shape.
    for (caller, path, status) in [
        (&analyst, "/api/v1/audit/export", StatusCode::FORBIDDEN),
        (
            &admin,
            "/api/v1/audit/export?format=xml",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            "/api/v1/audit/export?from=yesterday",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            "/api/v1/audit/export?from=2026-12-02&to=2026-12-01",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            "/api/v1/audit/export?format=csv&bogus=1",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, body) = app.call(caller, Method::GET, path, None).await;
        assert_eq!(s, status, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{body}"
        );
    }
    // Another tenant's admin exports their own chain, not A's.
    let Caller::Token { token: bt, .. } = &other else {
        unreachable!()
    };
    let (_, body, _) = app.send(get("/api/v1/audit/export", bt)).await;
    assert!(!body.contains("Case 1"), "{body}");
    assert!(body.contains(&format!("tenant:{}", b.0)));

    // The API request log: A's requests, route templates only, the
    // request ids the responses named; written in batches, so wait until
    // the writer has handled every request made so far.
    tokio::time::timeout(std::time::Duration::from_secs(30), app.state.requests.settled())
        .await
        .expect("the request log's writer handles its queue");
    let (s, body) = app
        .call(&admin, Method::GET, "/api/v1/requests?limit=200", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let log: Value = serde_json::from_str(&body).unwrap();
    let items = log["items"].as_array().unwrap();
    let traced = items
        .iter()
        .find(|r| r["request_id"] == "req-from-proxy.42")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(traced["method"], "POST");
    assert_eq!(traced["route"], "/api/v1/cases");
    assert_eq!(traced["status"], 201);
    assert!(traced["actor"].as_str().unwrap().starts_with("token:"));
    assert!(traced["ms"].as_f64().unwrap() >= 0.0);
    assert!(
        items.iter().all(|r| !r["route"].as_str().unwrap().contains('?')),
        "no query strings: {log}"
    );
    assert!(
        items.iter().any(|r| r["status"] == 403),
        "refusals are logged too: {log}"
    );
    let (_, theirs) = app
        .call(&other, Method::GET, "/api/v1/requests?limit=200", None)
        .await;
    assert!(!theirs.contains("req-from-proxy.42"), "{theirs}");
    let (s, _) = app.call(&analyst, Method::GET, "/api/v1/requests", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

mod audit_http {
    #[tokio::test]
    async fn sqlite() {
        super::audit_export_over_http(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::audit_export_over_http(super::Backend::Postgres).await
    }
}
