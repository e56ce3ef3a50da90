//! Cases, gates, the outbox and drafts over HTTP.

use super::*;

async fn gates_over_http(backend: Backend) {
    use serde_json::json;
    let app = app(backend).await;
    let (a, b) = (app.tenant("A").await, app.tenant("B").await);
    let ann = Caller::Token {
        role: Role::AnalystEdit,
        token: app.token(a, Role::AnalystEdit).await,
    };
    let bob = app.session(Some(a), Role::AnalystEdit, true).await;
    let reader = Caller::Token {
        role: Role::AnalystRead,
        token: app.token(a, Role::AnalystRead).await,
    };
    let exec = Caller::Token {
        role: Role::Executive,
        token: app.token(a, Role::Executive).await,
    };
    let engineer = Caller::Token {
        role: Role::SecurityEngineer,
        token: app.token(a, Role::SecurityEngineer).await,
    };
    let admin_token = Caller::Token {
        role: Role::TenantAdmin,
        token: app.token(a, Role::TenantAdmin).await,
    };
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let other = Caller::Token {
        role: Role::AnalystEdit,
        token: app.token(b, Role::AnalystEdit).await,
    };

    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "Beaconing from host-7", "severity": "high"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let case: serde_json::Value = serde_json::from_str(&body).unwrap();
    let case_id = case["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call(&exec, Method::GET, &format!("/api/v1/cases/{case_id}"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "executives see no raw cases");
    let (s, _) = app
        .call(&other, Method::GET, &format!("/api/v1/cases/{case_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's case is not found");
    let (s, _) = app
        .call(
            &reader,
            Method::POST,
            &format!("/api/v1/cases/{case_id}/gates"),
            Some(json!({"kind": "close_case", "payload": {"resolution": "benign"}})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "read-only analysts change nothing");

    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/cases/{case_id}/gates"),
            Some(json!({"kind": "escalate_critical", "payload": {"reason": "C2 confirmed"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let gate: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (gid, hash) = (
        gate["id"].as_str().unwrap().to_owned(),
        gate["payload_hash"].as_str().unwrap().to_owned(),
    );
    assert_eq!(gate["status"], "pending");
    let (s, inbox) = app
        .call(&reader, Method::GET, "/api/v1/gates?status=pending", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(inbox.contains(&gid) && inbox.contains("\"total\":1"), "{inbox}");

    let approve = |h: &str| Some(json!({"payload_hash": h}));
    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/gates/{gid}/approve"),
            approve(&hash),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no self-approval: {body}");
    let (s, body) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{gid}/approve"),
            approve(&"a".repeat(64)),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "hash mismatch: {body}");
    let (s, body) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{gid}/reject"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "reason required: {body}");
    let (s, body) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{gid}/approve"),
            approve(&hash),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("\"status\":\"executed\""), "{body}");
    let (_, body) = app
        .call(&reader, Method::GET, &format!("/api/v1/cases/{case_id}"), None)
        .await;
    assert!(body.contains("\"severity\":\"critical\""), "{body}");
    let (s, _) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{gid}/approve"),
            approve(&hash),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "decided gates stay decided");

    // Kill switch: engineers engage; only an MFA-verified tenant admin releases.
    let (s, body) = app
        .call(
            &engineer,
            Method::PUT,
            "/api/v1/kill-switch",
            Some(json!({"engaged": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/cases/{case_id}/gates"),
            Some(json!({"kind": "ticket_write", "payload": {"system": "jira", "operation": "create", "integration_id": "0190a0a0-0000-7000-8000-000000000000"}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no such integration: {body}");
    assert!(body.contains("names no jira integration"), "{body}");
    let (s, body) = app
        .call(
            &engineer,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"kind": "jira", "name": "Jira", "config": {"base_url": "https://acme.atlassian.net", "email": "soc@acme.example"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let jira: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/cases/{case_id}/gates"),
            Some(json!({"kind": "ticket_write", "payload": {"system": "jira", "operation": "create", "integration_id": jira["id"], "fields": {"summary": "x"}}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "asking is fine: {body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (s, body) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{}/approve", t["id"].as_str().unwrap()),
            approve(t["payload_hash"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::LOCKED, "no external write while engaged: {body}");
    for caller in [&engineer, &admin_token] {
        let (s, _) = app
            .call(
                caller,
                Method::PUT,
                "/api/v1/kill-switch",
                Some(json!({"engaged": false})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{}", caller.name());
    }
    let (s, body) = app
        .call(
            &admin,
            Method::PUT,
            "/api/v1/kill-switch",
            Some(json!({"engaged": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("\"engaged\":false"));
    let (s, body) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{}/approve", t["id"].as_str().unwrap()),
            approve(t["payload_hash"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.contains("\"status\":\"approved\"") && body.contains("\"idempotency_key\""),
        "{body}"
    );

    // N-of-M: a tenant admin asks for two approvers of critical escalations.
    let (s, body) = app
        .call(
            &bob,
            Method::PUT,
            "/api/v1/settings/gate-quorum",
            Some(json!({"kind": "escalate_critical", "quorum": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "analysts do not set policy: {body}");
    let (s, body) = app
        .call(
            &admin,
            Method::PUT,
            "/api/v1/settings/gate-quorum",
            Some(json!({"kind": "escalate_critical", "quorum": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("\"escalate_critical\":2"), "{body}");
    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "Second case"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let case2 = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/cases/{case2}/gates"),
            Some(json!({"kind": "escalate_critical", "payload": {"reason": "r"}})),
        )
        .await;
    let q: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (qid, qhash) = (
        q["id"].as_str().unwrap().to_owned(),
        q["payload_hash"].as_str().unwrap().to_owned(),
    );
    let (s, body) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{qid}/approve"),
            approve(&qhash),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.contains("\"status\":\"pending\"")
            && body.contains("\"approvals\":1")
            && body.contains("\"quorum\":2"),
        "{body}"
    );
    let (s, body) = app
        .call(
            &engineer,
            Method::POST,
            &format!("/api/v1/gates/{qid}/approve"),
            approve(&qhash),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("\"status\":\"executed\""), "{body}");

    // Every decision is in the tenant's audit log, with the decider's role.
    let (_, log) = app
        .call(&admin, Method::GET, "/api/v1/audit?limit=200", None)
        .await;
    for action in [
        "gate.request",
        "gate.approve",
        "kill_switch.engage",
        "kill_switch.release",
        "case.open",
    ] {
        assert!(
            log.contains(&format!("\"action\":\"{action}\"")),
            "{action} missing: {log}"
        );
    }
}

mod engine_http {
    #[tokio::test]
    async fn sqlite() {
        super::gates_over_http(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::gates_over_http(super::Backend::Postgres).await
    }
}

/// Assignment and comments over the API: who may be assigned, who may
/// write, the queue's `assignee` filter, a comment's limits, another
/// tenant's case, and the audit trail.
async fn cases_are_worked_over_http(backend: Backend) {
    use serde_json::{Value, json};
    let app = app(backend).await;
    let (a, b) = (app.tenant("A").await, app.tenant("B").await);
    let ann = app.session(Some(a), Role::AnalystEdit, true).await;
    let exec = app.session(Some(a), Role::Executive, true).await;
    let reader = app.session(Some(a), Role::AnalystRead, true).await;
    let other = app.session(Some(b), Role::AnalystEdit, true).await;
    let bot = Caller::Token {
        role: Role::AnalystEdit,
        token: app.token(a, Role::AnalystEdit).await,
    };
    let id_of = |body: &str, key: &str| -> String {
        let v: Value = serde_json::from_str(body).unwrap();
        v[key].as_str().unwrap().to_owned()
    };
    let mut ids = Vec::new();
    for c in [&ann, &exec, &reader, &other] {
        ids.push(id_of(
            &app.call(c, Method::GET, "/api/v1/me", None).await.1,
            "user_id",
        ));
    }
    let [ann_id, exec_id, reader_id, other_id] = <[String; 4]>::try_from(ids).unwrap();
    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "Beaconing from host-7"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let case_id = id_of(&body, "id");
    let assign = format!("/api/v1/cases/{case_id}/assignee");
    let comments = format!("/api/v1/cases/{case_id}/comments");

    // Assigned to a member who works cases.
    let (s, body) = app
        .call(&ann, Method::PUT, &assign, Some(json!({"user_id": ann_id})))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(id_of(&body, "assignee"), ann_id);
    // Refused: an executive or a read-only analyst as assignee (422),
    // another tenant's member or a malformed id (404), a reader or an
    // executive assigning (403), an unknown field (422).
    for (who, want) in [
        (json!({"user_id": exec_id}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"user_id": reader_id}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"user_id": other_id}), StatusCode::NOT_FOUND),
        (json!({"user_id": "not-a-uuid"}), StatusCode::NOT_FOUND),
        (
            json!({"user_id": ann_id, "role": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, body) = app.call(&ann, Method::PUT, &assign, Some(who.clone())).await;
        assert_eq!(s, want, "{who}: {body}");
        assert!(body.contains("\"error\""), "{body}");
    }
    for c in [&reader, &exec] {
        let (s, _) = app
            .call(c, Method::PUT, &assign, Some(json!({"user_id": null})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, _) = app
        .call(&other, Method::PUT, &assign, Some(json!({"user_id": other_id})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's case");
    // The queue by assignee: mine, nobody's; a token's "me" is nobody.
    let (_, body) = app
        .call(&ann, Method::GET, "/api/v1/cases?assignee=me&state=open", None)
        .await;
    assert!(body.contains(&case_id) && body.contains("\"total\":1"), "{body}");
    let (_, body) = app
        .call(&ann, Method::GET, "/api/v1/cases?assignee=none", None)
        .await;
    assert!(body.contains("\"total\":0"), "{body}");
    let (_, body) = app
        .call(&bot, Method::GET, "/api/v1/cases?assignee=me", None)
        .await;
    assert!(body.contains("\"total\":0"), "{body}");
    let (s, _) = app
        .call(&ann, Method::GET, "/api/v1/cases?assignee=everyone", None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Comments: a person's and a token's, oldest first, limits refused.
    let (s, body) = app
        .call(
            &ann,
            Method::POST,
            &comments,
            Some(json!({"body": "Checked the proxy.\nNothing else."})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, _) = app
        .call(
            &bot,
            Method::POST,
            &comments,
            Some(json!({"body": "enrichment re-run"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for bad in [
        json!({"body": ""}),
        json!({"body": "a\u{7}b"}),
        json!({"body": "x".repeat(10_001)}),
        json!({}),
    ] {
        let (s, body) = app.call(&ann, Method::POST, &comments, Some(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let (s, _) = app
        .call(&reader, Method::POST, &comments, Some(json!({"body": "x"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, body) = app.call(&reader, Method::GET, &comments, None).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"][0]["body"], "Checked the proxy.\nNothing else.");
    assert!(v["items"][1]["author"].as_str().unwrap().starts_with("token:"));
    let (s, _) = app.call(&exec, Method::GET, &comments, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "executives read briefs, not case work");
    let (s, _) = app.call(&other, Method::GET, &comments, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(&ann, Method::GET, &format!("{comments}?limit=0"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Audited, with the role held at the time and the comment's size only.
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let (_, log) = app
        .call(&admin, Method::GET, "/api/v1/audit?limit=200", None)
        .await;
    assert!(log.contains("\"action\":\"case.assign\""), "{log}");
    assert!(log.contains("\"action\":\"case.comment\""), "{log}");
    assert!(
        !log.contains("Checked the proxy"),
        "the text stays out of the log"
    );
}

mod case_work_http {
    #[tokio::test]
    async fn sqlite() {
        super::cases_are_worked_over_http(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::cases_are_worked_over_http(super::Backend::Postgres).await
    }
}
