//! Integrations, write scopes, credentials and signed ingest over HTTP.

use super::*;

async fn integrations_over_http(backend: Backend) {
    use serde_json::json;
    let app = app(backend).await;
    let (a, b) = (app.tenant("A").await, app.tenant("B").await);
    let engineer = Caller::Token {
        role: Role::SecurityEngineer,
        token: app.token(a, Role::SecurityEngineer).await,
    };
    let admin_token = Caller::Token {
        role: Role::TenantAdmin,
        token: app.token(a, Role::TenantAdmin).await,
    };
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let admin_no_mfa = app.session(Some(a), Role::TenantAdmin, false).await;
    let analyst = Caller::Token {
        role: Role::AnalystEdit,
        token: app.token(a, Role::AnalystEdit).await,
    };
    let other = Caller::Token {
        role: Role::TenantAdmin,
        token: app.token(b, Role::TenantAdmin).await,
    };

    let body = json!({"kind": "servicenow", "name": "ServiceNow", "config": {"instance_url": "https://acme.service-now.com", "username": "vigil"}});
    let (s, _) = app
        .call(&analyst, Method::POST, "/api/v1/integrations", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "analysts do not configure integrations");
    let (s, res) = app
        .call(&engineer, Method::POST, "/api/v1/integrations", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    let v: serde_json::Value = serde_json::from_str(&res).unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let writes: Vec<_> = v["manifest"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["access"] == "write")
        .collect();
    assert!(
        !writes.is_empty() && writes.iter().all(|s| s["enabled"] == false),
        "read-only: {res}"
    );
    assert!(
        res.contains("PATCH /api/now/table/incident/{sys_id}"),
        "the manifest names the vendor calls"
    );
    let (s, res) = app.call(&engineer, Method::POST, "/api/v1/integrations", Some(json!({"kind": "servicenow", "name": "x", "config": {"instance_url": "http://evil.example", "username": "u"}}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "TLS only: {res}");

    let url = format!("/api/v1/integrations/{id}/scopes/incident:create");
    for (caller, why) in [
        (&engineer, "engineers may not"),
        (&admin_token, "a token may not"),
        (&admin_no_mfa, "MFA first"),
    ] {
        let (s, res) = app
            .call(caller, Method::PUT, &url, Some(json!({"enabled": true})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{why}: {res}");
    }
    let (s, res) = app
        .call(&admin, Method::PUT, &url, Some(json!({"enabled": true})))
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let (s, res) = app
        .call(&analyst, Method::GET, &format!("/api/v1/integrations/{id}"), None)
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "analysts do not read integrations: {res}"
    );
    let (s, res) = app
        .call(
            &engineer,
            Method::GET,
            &format!("/api/v1/integrations/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&res).unwrap();
    let create = v["manifest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "incident:create")
        .unwrap()
        .clone();
    assert_eq!(create["enabled"], true);
    let (s, _) = app
        .call(&other, Method::GET, &format!("/api/v1/integrations/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's integration");
    let (s, _) = app
        .call(
            &admin,
            Method::PUT,
            &format!("/api/v1/integrations/{id}/scopes/incident:read"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "read scopes stay on");
    let (s, _) = app
        .call(&admin, Method::PUT, &url, Some(json!({"enabled": false})))
        .await;
    assert_eq!(s, StatusCode::OK);

    // Credentials: a webhook's signing secret is shown once; afterwards only a fingerprint.
    let (s, res) = app
        .call(
            &engineer,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"kind": "webhook", "name": "EDR"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    let hook: serde_json::Value = serde_json::from_str(&res).unwrap();
    let signing = hook["signing_secret"].as_str().unwrap().to_owned();
    let (_, res) = app
        .call(
            &engineer,
            Method::GET,
            &format!("/api/v1/integrations/{}", hook["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(
        !res.contains(&signing) && res.contains("\"fingerprint\""),
        "{res}"
    );
    let cred_url = format!("/api/v1/integrations/{id}/credentials");
    let (s, _) = app
        .call(&analyst, Method::POST, &cred_url, Some(json!({"secret": "pw"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, res) = app
        .call(
            &engineer,
            Method::POST,
            &cred_url,
            Some(json!({"secret": "servicenow-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    assert!(
        !res.contains("servicenow-password") && res.contains("\"version\":1"),
        "{res}"
    );
    let (s, _) = app
        .call(&admin, Method::POST, &format!("{cred_url}/revoke"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, res) = app
        .call(
            &engineer,
            Method::GET,
            &format!("/api/v1/integrations/{id}"),
            None,
        )
        .await;
    assert!(res.contains("\"credential\":null"), "revoked: {res}");

    let (_, log) = app
        .call(&admin, Method::GET, "/api/v1/audit?limit=100", None)
        .await;
    let v: serde_json::Value = serde_json::from_str(&log).unwrap();
    let changes: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "integration.scope")
        .collect();
    assert_eq!(changes.len(), 2, "{log}");
    assert_eq!(changes[0]["summary"]["after"]["enabled"], false, "newest first");
    assert_eq!(changes[1]["summary"]["before"]["enabled"], false);
    assert_eq!(changes[1]["actor_role"], "tenant_admin");
}

mod integrations_http {
    #[tokio::test]
    async fn sqlite() {
        super::integrations_over_http(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::integrations_over_http(super::Backend::Postgres).await
    }
}

async fn ingest_over_http(backend: Backend) {
    use serde_json::json;
    use vigil_orchestrator::pipeline::ingest::sign;
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let engineer = Caller::Token {
        role: Role::SecurityEngineer,
        token: app.token(a, Role::SecurityEngineer).await,
    };
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let (_, res) = app
        .call(
            &engineer,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"kind": "webhook", "name": "EDR"})),
        )
        .await;
    let hook: serde_json::Value = serde_json::from_str(&res).unwrap();
    let (id, secret) = (
        hook["id"].as_str().unwrap().to_owned(),
        hook["signing_secret"].as_str().unwrap().to_owned(),
    );
    let (_, res) = app
        .call(
            &engineer,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"kind": "graylog", "name": "GL", "config": {"base_url": "https://gl.example"}})),
        )
        .await;
    let graylog = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = app.clock.now().timestamp().to_string();

    let deliver = |body: String, ts: String, sig: Option<String>, to: String| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/ingest/{to}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-vigil-timestamp", ts);
        if let Some(s) = sig {
            b = b.header("x-vigil-signature", s);
        }
        b.body(Body::from(body)).unwrap()
    };
    // One alert of each format, as the sources send them (spacing kept verbatim).
    let body = r#"[ {"class_uid": 2004, "finding_info": {"uid": "ocsf-1", "title": "Malware"}},
  {"@timestamp": "2026-11-22T11:59:00Z", "ecs": {"version": "8.11.0"}, "event": {"id": "ecs-1", "kind": "alert"}, "host": {"name": "FIN-WS-042"}},
  {"composite_id": "cid:ind:42", "cid": "cid", "device": {"device_id": "d1", "hostname": "FIN-WS-042"}},
  {"event_definition_id": "def-1", "event": {"id": "gl-1", "event_definition_id": "def-1", "message": "ssh brute force"}} ]"#
        .to_owned();
    let (s, res, _) = app
        .send(deliver(
            body.clone(),
            now.clone(),
            Some(sign(secret.as_bytes(), &now, body.as_bytes())),
            id.clone(),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{res}");
    let first: serde_json::Value = serde_json::from_str(&res).unwrap();
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(4), Some(0)),
        "{res}"
    );
    // A redelivery is idempotent: same ids, nothing new.
    let (s, res, _) = app
        .send(deliver(
            body.clone(),
            now.clone(),
            Some(sign(secret.as_bytes(), &now, body.as_bytes())),
            id.clone(),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let again: serde_json::Value = serde_json::from_str(&res).unwrap();
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(again["alert_ids"], first["alert_ids"]);
    let (_, list) = app
        .call(&engineer, Method::GET, "/api/v1/alerts?limit=100", None)
        .await;
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["total"], 4);
    let formats: std::collections::BTreeSet<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["format"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        formats.into_iter().collect::<Vec<_>>(),
        ["crowdstrike", "ecs", "graylog", "ocsf"]
    );
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["raw"].as_str().unwrap().starts_with("{\"@timestamp\": \"2026")),
        "stored verbatim"
    );

    // Correlated: the CrowdStrike and ECS alerts share nothing with each other here, but every alert sits in a case.
    let (_, cases) = app
        .call(&engineer, Method::GET, "/api/v1/cases?limit=100", None)
        .await;
    let cases: serde_json::Value = serde_json::from_str(&cases).unwrap();
    let mut placed = 0;
    for k in cases["items"].as_array().unwrap() {
        let (_, one) = app
            .call(
                &engineer,
                Method::GET,
                &format!("/api/v1/cases/{}", k["id"].as_str().unwrap()),
                None,
            )
            .await;
        placed += serde_json::from_str::<serde_json::Value>(&one).unwrap()["alerts"]
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(placed, 4, "{cases}");

    // Observables, normalised, each with the pointer to its evidence.
    let items = v["items"].as_array().unwrap();
    let cs = items.iter().find(|a| a["format"] == "crowdstrike").unwrap();
    let host = cs["observables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "host")
        .unwrap();
    assert_eq!(
        (host["value"].as_str(), host["pointer"].as_str()),
        (Some("fin-ws-042"), Some("/device/hostname"))
    );
    let ecs = items.iter().find(|a| a["format"] == "ecs").unwrap();
    assert!(
        ecs["observables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "host" && o["pointer"] == "/host/name"),
        "{ecs}"
    );

    // Refusals: precise, audited where they matter, nothing stored.
    let one = r#"{"class_uid": 2004, "finding_info": {"uid": "ocsf-2"}}"#.to_owned();
    let cases = [
        (
            deliver(
                one.clone(),
                now.clone(),
                Some(sign(b"forged", &now, one.as_bytes())),
                id.clone(),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            deliver(one.clone(), now.clone(), None, id.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        {
            let old = (app.clock.now().timestamp() - 301).to_string();
            (
                deliver(
                    one.clone(),
                    old.clone(),
                    Some(sign(secret.as_bytes(), &old, one.as_bytes())),
                    id.clone(),
                ),
                StatusCode::UNAUTHORIZED,
            )
        },
        {
            let unknown =
                r#"[{"class_uid": 2004, "finding_info": {"uid": "ok"}}, {"hello": "world"}]"#.to_owned();
            (
                deliver(
                    unknown.clone(),
                    now.clone(),
                    Some(sign(secret.as_bytes(), &now, unknown.as_bytes())),
                    id.clone(),
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        },
        {
            let broken = r#"{"class_uid": 2004,"#.to_owned();
            (
                deliver(
                    broken.clone(),
                    now.clone(),
                    Some(sign(secret.as_bytes(), &now, broken.as_bytes())),
                    id.clone(),
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        },
        {
            let huge = format!("{{\"class_uid\": 2004, \"pad\": \"{}\"}}", "x".repeat(1 << 20));
            (
                deliver(
                    huge.clone(),
                    now.clone(),
                    Some(sign(secret.as_bytes(), &now, huge.as_bytes())),
                    id.clone(),
                ),
                StatusCode::PAYLOAD_TOO_LARGE,
            )
        },
        (
            deliver(
                one.clone(),
                now.clone(),
                Some(sign(secret.as_bytes(), &now, one.as_bytes())),
                graylog,
            ),
            StatusCode::NOT_FOUND,
        ),
        (
            deliver(
                one.clone(),
                now.clone(),
                Some(sign(secret.as_bytes(), &now, one.as_bytes())),
                uuid::Uuid::new_v4().to_string(),
            ),
            StatusCode::NOT_FOUND,
        ),
        (
            deliver(
                one.clone(),
                now.clone(),
                Some(sign(secret.as_bytes(), &now, one.as_bytes())),
                "not-a-uuid".into(),
            ),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (n, (req, want)) in cases.into_iter().enumerate() {
        let (s, res, _) = app.send(req).await;
        assert_eq!(s, want, "case {n}: {res}");
        assert!(res.contains("\"error\""), "case {n}: {res}");
    }
    let (_, list) = app
        .call(&engineer, Method::GET, "/api/v1/alerts?limit=100", None)
        .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list).unwrap()["total"],
        4,
        "nothing partially stored"
    );
    let (_, log) = app
        .call(&admin, Method::GET, "/api/v1/audit?limit=200", None)
        .await;
    assert_eq!(
        log.matches("\"action\":\"ingest.rejected\"").count(),
        3,
        "forged, unsigned and stale deliveries are audited"
    );

    // Revoking the signing secret stops ingest at once.
    let (s, _) = app
        .call(
            &admin,
            Method::POST,
            &format!("/api/v1/integrations/{id}/credentials/revoke"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = app
        .send(deliver(
            one.clone(),
            now.clone(),
            Some(sign(secret.as_bytes(), &now, one.as_bytes())),
            id.clone(),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

mod ingest_http {
    #[tokio::test]
    async fn sqlite() {
        super::ingest_over_http(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::ingest_over_http(super::Backend::Postgres).await
    }
}
