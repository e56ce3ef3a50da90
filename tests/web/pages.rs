//! The server-rendered pages in a browser's terms: the approvals inbox, the integrations page, the case queue.

use super::*;

async fn approvals_inbox_in_the_browser(backend: Backend) {
    use serde_json::json;
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    let bob = app.session(Some(a), Role::AnalystEdit, false).await;
    let (_, res) = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "Ransom note on FS-01"})),
        )
        .await;
    let case = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, res) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/cases/{case}/gates"),
            Some(json!({"kind": "escalate_critical", "payload": {"reason": "encryption in progress"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    let gate = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = |c: &Caller| {
        let Caller::Session { cookie, .. } = c else {
            unreachable!()
        };
        Request::builder()
            .uri("/gates")
            .header(header::COOKIE, format!("vigil_session={cookie}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, html, _) = app.send(page(&ann)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Ransom note on FS-01") && html.contains("You requested this"),
        "{html}"
    );
    assert!(
        !html.contains(&format!("/gates/{gate}/approve")),
        "no buttons for the requester"
    );

    let (s, html, _) = app.send(page(&bob)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(&format!("action=\"/gates/{gate}/approve\"")),
        "{html}"
    );
    let field = |name: &str| {
        html.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let (csrf, hash) = (field("csrf"), field("payload_hash"));
    let Caller::Session { cookie, .. } = &bob else {
        unreachable!()
    };
    let form = Request::builder()
        .method(Method::POST)
        .uri(format!("/gates/{gate}/approve"))
        .header(header::COOKIE, format!("vigil_session={cookie}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&payload_hash={hash}")))
        .unwrap();
    let (s, _, h) = app.send(form).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/gates");
    let (_, res) = app
        .call(&bob, Method::GET, &format!("/api/v1/gates/{gate}"), None)
        .await;
    assert!(res.contains("\"status\":\"executed\""), "{res}");
    let (_, html, _) = app.send(page(&bob)).await;
    assert!(html.contains("Nothing is waiting"), "{html}");
    // htmx is served by Vigil itself.
    let (s, js, h) = app
        .send(
            Request::builder()
                .uri("/static/htmx.min.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        js.starts_with("var htmx=")
            && h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
    );
}

mod inbox_page {
    #[tokio::test]
    async fn sqlite() {
        super::approvals_inbox_in_the_browser(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::approvals_inbox_in_the_browser(super::Backend::Postgres).await
    }
}

async fn integrations_page(backend: Backend) {
    use serde_json::json;
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let eng = app.session(Some(a), Role::SecurityEngineer, true).await;
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let admin_no_mfa = app.session(Some(a), Role::TenantAdmin, false).await;
    let reader = app.session(Some(a), Role::AnalystRead, false).await;
    let (s, res) = app
        .call(
            &eng,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"kind": "jira", "name": "Jira Cloud", "config": {"base_url": "https://acme.atlassian.net", "email": "soc@acme.example"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    let id = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = app
        .call(
            &eng,
            Method::POST,
            &format!("/api/v1/integrations/{id}/credentials"),
            Some(json!({"secret": "atlassian-api-token"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let page = |c: &Caller| {
        let Caller::Session { cookie, .. } = c else {
            unreachable!()
        };
        Request::builder()
            .uri("/integrations")
            .header(header::COOKIE, format!("vigil_session={cookie}"))
            .body(Body::empty())
            .unwrap()
    };
    // The manifest, with the exact calls; the fingerprint, never the secret.
    let (s, html, _) = app.send(page(&eng)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Jira Cloud") && html.contains("POST /rest/api/3/issue"),
        "{html}"
    );
    assert!(html.contains("fingerprint") && !html.contains("atlassian-api-token"));
    assert!(!html.contains("Turn on"), "engineers do not toggle write scopes");
    let (_, html_no_mfa, _) = app.send(page(&admin_no_mfa)).await;
    assert!(!html_no_mfa.contains("Turn on"), "not without MFA");
    let (s, _, _) = app.send(page(&reader)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, html, _) = app.send(page(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    let action = format!("action=\"/integrations/{id}/scopes/issue:create\"");
    assert!(html.contains(&action), "{html}");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let Caller::Session { cookie, .. } = &admin else {
        unreachable!()
    };
    let post = |body: String| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/integrations/{id}/scopes/issue:create"))
            .header(header::COOKIE, format!("vigil_session={cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let (s, _, _) = app.send(post("enabled=true".into())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token, no change");
    let (s, _, h) = app.send(post(format!("csrf={csrf}&enabled=true"))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/integrations");
    let (_, res) = app
        .call(&admin, Method::GET, &format!("/api/v1/integrations/{id}"), None)
        .await;
    let v: serde_json::Value = serde_json::from_str(&res).unwrap();
    let on = v["manifest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["scope"] == "issue:create")
        .unwrap()["enabled"]
        .as_bool();
    assert_eq!(on, Some(true));
    let (_, html, _) = app.send(page(&admin)).await;
    assert!(html.contains("Turn off"), "{html}");
}

mod integrations_page {
    #[tokio::test]
    async fn sqlite() {
        super::integrations_page(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::integrations_page(super::Backend::Postgres).await
    }
}

/// A page requested by a signed-in person (their session cookie).
fn page_get(c: &Caller, uri: &str) -> Request<Body> {
    let Caller::Session { cookie, .. } = c else {
        unreachable!("pages are for sessions")
    };
    Request::builder()
        .uri(uri)
        .header(header::COOKIE, format!("vigil_session={cookie}"))
        .body(Body::empty())
        .unwrap()
}

/// The case queue's filters on both backends: severity, state, title words
/// (case-insensitive; LIKE wildcards are literal), sort by severity; bad
/// filters are a 422 page, never a 500; another tenant's case is a 404.
async fn case_queue(backend: Backend) {
    use serde_json::json;
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    let bea = app.session(Some(b), Role::AnalystEdit, false).await;
    for (title, sev) in [
        ("Ransom note on FS-01", "critical"),
        ("Phishing 100% sure", "high"),
        ("phishing_link clicked", "low"),
        ("Beaconing from WS-7", "medium"),
    ] {
        let (s, res) = app
            .call(
                &ann,
                Method::POST,
                "/api/v1/cases",
                Some(json!({"title": title, "severity": sev})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{res}");
    }
    let (_, res) = app
        .call(
            &bea,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "B's secret case"})),
        )
        .await;
    let theirs = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = page_get;
    let rows = |html: &str| html.matches("<tr data-row>").count();
    let (s, html, _) = app.send(get(&ann, "/cases")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rows(&html), 4, "{html}");
    assert!(!html.contains("B&#39;s secret case") && !html.contains("secret case"));
    let (_, html, _) = app.send(get(&ann, "/cases?q=PHISHING")).await;
    assert_eq!(rows(&html), 2, "case-insensitive words");
    let (_, html, _) = app.send(get(&ann, "/cases?q=100%25")).await;
    assert_eq!(rows(&html), 1, "% is a literal character");
    let (_, html, _) = app.send(get(&ann, "/cases?q=phishing_")).await;
    assert_eq!(rows(&html), 1, "_ is a literal character");
    let (_, html, _) = app.send(get(&ann, "/cases?severity=high")).await;
    assert_eq!(rows(&html), 1);
    let (_, html, _) = app.send(get(&ann, "/cases?sort=severity")).await;
    let first = html.split("<tr data-row>").nth(1).unwrap();
    assert!(first.contains("Ransom note"), "critical first: {first}");
    let (_, html, _) = app.send(get(&ann, "/cases?state=closed")).await;
    assert_eq!(rows(&html), 0);
    for bad in [
        "/cases?severity=urgent",
        "/cases?state=%00",
        "/cases?age=forever",
        "/cases?sort=random",
        "/cases?q=%07bell",
        "/cases?page=-1",
        "/cases?page=99999999999999999999999",
    ] {
        let (s, html, _) = app.send(get(&ann, bad)).await;
        assert!(
            s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST,
            "{bad}: {s} {html}"
        );
        assert!(
            html.contains("<main"),
            "{bad}: a page, not a bare refusal: {html}"
        );
    }
    let (_, html, _) = app.send(get(&ann, "/cases?page=999")).await;
    assert_eq!(rows(&html), 0, "past the last page: empty, not an error");
    // A long queue is counted to a thousand, then "more than".
    {
        use sea_orm::{ActiveValue::Set, EntityTrait};
        use vigil_orchestrator::store::entity::case;
        let now = vigil_orchestrator::Clock::now(app.clock.as_ref());
        let tx = app.state.store.begin_tenant(a).await.unwrap();
        for batch in (0..1100).collect::<Vec<i64>>().chunks(250) {
            case::Entity::insert_many(batch.iter().map(|&i| case::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                tenant_id: Set(a.0),
                title: Set(format!("Old case {i}")),
                severity: Set("low".into()),
                state: Set("closed".into()),
                created_at: Set(now - chrono::Duration::minutes(i + 10)),
                updated_at: Set(now - chrono::Duration::minutes(i + 10)),
                merged_into: Set(None),
                assignee: Set(None),
            }))
            .exec(&*tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let count = |html: &str| {
        let at = html.find("id=\"queue-count\">").unwrap();
        html[at..].split('·').next().unwrap().to_owned()
    };
    let (_, html, _) = app.send(get(&ann, "/cases?state=all")).await;
    assert!(
        count(&html).contains("more than 1000 case(s)"),
        "{}",
        count(&html)
    );
    assert!(html.contains("page=2\" rel=\"next\""), "a next page is offered");
    let (_, html, _) = app.send(get(&ann, "/cases?state=all&page=22")).await;
    assert!(
        count(&html).contains("1104 case(s)"),
        "counted to the end from page 22: {}",
        count(&html)
    );
    assert!(html.contains("page 22 of 23"));
    let (_, html, _) = app.send(get(&ann, "/cases")).await;
    assert_eq!(rows(&html), 4, "the open ones, counted exactly");
    let (s, _, _) = app.send(get(&ann, &format!("/cases/{theirs}"))).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's case does not exist here"
    );
    let (s, _, _) = app.send(get(&ann, "/cases/not-a-uuid")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = app.send(get(&ann, &format!("/alerts/{theirs}?at=/x"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

mod case_queue {
    #[tokio::test]
    async fn sqlite() {
        super::case_queue(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::case_queue(super::Backend::Postgres).await
    }
}

/// The executive dashboard's figures on both backends: a case decided 30
/// minutes after it opened gives MTTA 30 min; a proposal approved counts
/// as approved; only the executive (and roles with `dashboard read`) opens it.
async fn dashboard(backend: Backend) {
    use serde_json::json;
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    let (_, res) = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "Ransom note", "severity": "high"})),
        )
        .await;
    let case = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, res) = app
        .call(
            &ann,
            Method::POST,
            &format!("/api/v1/cases/{case}/gates"),
            Some(json!({"kind": "escalate_critical", "payload": {"reason": "encryption"}})),
        )
        .await;
    let g: serde_json::Value = serde_json::from_str(&res).unwrap();
    app.clock.advance(chrono::Duration::minutes(30));
    // (sessions idle out in 30 minutes: these people sign in now)
    let bob = app.session(Some(a), Role::AnalystEdit, false).await;
    let exec = app.session(Some(a), Role::Executive, false).await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    let (s, res) = app
        .call(
            &bob,
            Method::POST,
            &format!("/api/v1/gates/{}/approve", g["id"].as_str().unwrap()),
            Some(json!({"payload_hash": g["payload_hash"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let get = |c: &Caller| {
        let Caller::Session { cookie, .. } = c else {
            unreachable!()
        };
        Request::builder()
            .uri("/dashboard")
            .header(header::COOKIE, format!("vigil_session={cookie}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, html, _) = app.send(get(&exec)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<dd>30 min</dd>"), "MTTA: {html}");
    assert!(html.contains("median over 1 case(s)"), "{html}");
    assert!(
        html.contains("<svg") && html.contains("<title>"),
        "server-side SVG: {html}"
    );
    assert!(
        !html.contains("<form method=\"post\" action=\"/gates"),
        "no controls"
    );
    let (s, _, _) = app.send(get(&ann)).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the analyst has no dashboard permission"
    );
}

mod dashboard {
    #[tokio::test]
    async fn sqlite() {
        super::dashboard(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::dashboard(super::Backend::Postgres).await
    }
}

/// Edit-then-approve through the API on both backends: the edit becomes
/// the next version, approved, with the diff and the version it came from;
/// the original is `edited`; a second edit of it is a conflict; an edit
/// that cites outside the case, carries control characters or changes
/// nothing is refused whole (422) and leaves the draft as it was.
async fn draft_edits(backend: Backend) {
    use serde_json::{Value, json};
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    // An alert through the real pipeline opens a case; a draft cites it.
    let (case, alert, draft_id) = {
        use vigil_orchestrator::pipeline::{drafts, ingest};
        let tx = app.state.store.begin_tenant(a).await.unwrap();
        let hook = vigil_orchestrator::connect::integrations::create(
            &tx,
            app.clock.as_ref(),
            &vigil_orchestrator::audit::Actor::cli(),
            "webhook",
            "feed",
            json!({}),
        )
        .await
        .unwrap();
        let raw = r#"{"@timestamp": "2026-11-22T10:00:00Z", "ecs": {"version": "8.11.0"}, "event": {"id": "e-1", "kind": "alert"}, "host": {"name": "ws-1"}, "message": "Beaconing from ws-1"}"#;
        let ids = ingest::store_checked(
            &tx,
            app.clock.as_ref(),
            hook.id,
            ingest::check("auto", &[raw]).unwrap(),
        )
        .await
        .unwrap()
        .alert_ids;
        let (_, case) = ingest::get(&tx, ids[0]).await.unwrap();
        let case = case.unwrap();
        let b: drafts::Body = serde_json::from_value(json!({
            "summary": [{"text": "One alert.", "cites": [{"alert_id": ids[0], "pointer": "/message"}]}],
            "scope": [], "entities": [], "timeline": [], "recommendations": []}))
        .unwrap();
        let d = drafts::store(&tx, app.clock.as_ref(), case, &b, "test")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (case, ids[0], d.id)
    };
    let body = json!({"summary": [{"text": "One alert.", "cites": [{"alert_id": alert, "pointer": "/message"}]}],
                      "scope": [], "entities": [], "timeline": [], "recommendations": []});
    let edit_uri = format!("/api/v1/drafts/{draft_id}/edit");
    let edit = |b: Value| app.call(&ann, Method::POST, &edit_uri, Some(json!({"body": b})));
    let mut outside = body.clone();
    outside["summary"][0]["cites"][0]["alert_id"] = json!(uuid::Uuid::now_v7());
    let mut bell = body.clone();
    bell["summary"][0]["text"] = json!("ring \u{7}");
    for (bad, why) in [
        (outside, "outside the case"),
        (bell, "control character"),
        (body.clone(), "no change"),
    ] {
        let (s, res) = edit(bad).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {res}");
        assert!(res.contains("\"code\":\"invalid\""), "{res}");
    }
    let mut good = body.clone();
    good["summary"][0]["text"] = json!("One alert, confirmed by the analyst.");
    let (s, res) = edit(good).await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let v: Value = serde_json::from_str(&res).unwrap();
    assert_eq!(v["state"], "approved");
    assert_eq!(v["version"], 2);
    assert_eq!(v["edited_from"], draft_id.to_string());
    assert_eq!(v["edit_diff"][0]["pointer"], "/summary", "{v}");
    let (_, res) = app
        .call(&ann, Method::GET, &format!("/api/v1/cases/{case}/drafts"), None)
        .await;
    let list: Value = serde_json::from_str(&res).unwrap();
    assert_eq!(list["items"][1]["state"], "edited", "{list}");
    let (s, _) = edit(body.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "an edited draft is decided");
}

mod draft_edits {
    #[tokio::test]
    async fn sqlite() {
        super::draft_edits(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::draft_edits(super::Backend::Postgres).await
    }
}

/// Single sign-on from the login page on both backends: the address's
/// domain finds its providers across tenants before sign-in (one: straight
/// to it; several: a button each), a disabled provider is not offered, an
/// unknown domain or a malformed address is a page that says so.
async fn sso_discovery(backend: Backend) {
    use serde_json::{Value, json};
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let admin_a = app.session(Some(a), Role::TenantAdmin, true).await;
    let admin_b = app.session(Some(b), Role::TenantAdmin, true).await;
    let (idp_run, _idp) = vigil::sim::oidc::start().await;
    let issuer = idp_run.base();
    let create = |who: &Caller, name: &str, domain: &str| {
        let body = json!({"name": name, "issuer": issuer, "client_id": "vigil",
                          "role_map": {"soc": "analyst_edit"}, "domains": [domain]});
        let who = who.clone();
        let app = &app;
        async move {
            let (s, res) = app
                .call(&who, Method::POST, "/api/v1/sso/providers", Some(body))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{res}");
            serde_json::from_str::<Value>(&res).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let okta = create(&admin_a, "Okta", "acme.example").await;
    let _entra = create(&admin_a, "Entra", "acme.example").await;
    let other = create(&admin_b, "Keycloak", "other.example").await;
    let gone = create(&admin_b, "Old IdP", "gone.example").await;
    let (s, res) = app
        .call(
            &admin_b,
            Method::PUT,
            &format!("/api/v1/sso/providers/{gone}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let get = |q: &str| {
        Request::builder()
            .uri(format!("/login/sso?email={q}"))
            .body(Body::empty())
            .unwrap()
    };
    // One provider: the page goes on to it by itself (a navigation: the
    // page's CSP, form-action 'self', blocks a form's redirect to an IdP).
    let (s, html, h) = app.send(get("mallory%40Other.Example")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!h.contains_key(header::LOCATION));
    assert!(
        html.contains(&format!(
            r#"<meta http-equiv="refresh" content="0;url=/sso/{other}/login">"#
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"href="/sso/{other}/login""#)),
        "a link too: {html}"
    );
    let (s, html, _) = app.send(get("ann%40acme.example")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(&format!("/sso/{okta}/login")) && html.contains("Sign in with Entra"),
        "{html}"
    );
    assert!(!html.contains("Keycloak"), "only the domain's providers: {html}");
    for q in [
        "x%40gone.example",
        "x%40nowhere.example",
        "not-an-address",
        "%00%40acme.example",
        "",
    ] {
        let (s, html, _) = app.send(get(q)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{q}: {html}");
        assert!(
            html.contains("password") || html.contains("e-mail"),
            "{q}: {html}"
        );
        assert!(!html.contains("/sso/"), "{q}: nothing offered: {html}");
    }
}

mod sso_discovery {
    #[tokio::test]
    async fn sqlite() {
        super::sso_discovery(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::sso_discovery(super::Backend::Postgres).await
    }
}

/// Evidence items: the API returns one item of the tenant's (another
/// tenant's is a 404, the executive is refused), the viewer highlights the
/// cited field of the vendor's answer, a not-collected item says why, and
/// the case page lists both.
async fn evidence_items(backend: Backend) {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use serde_json::json;
    use vigil_orchestrator::store::entity::evidence;
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    let bea = app.session(Some(b), Role::AnalystEdit, false).await;
    let exec = app.session(Some(a), Role::Executive, false).await;
    let (_, res) = app
        .call(
            &ann,
            Method::POST,
            "/api/v1/cases",
            Some(json!({"title": "Beaconing"})),
        )
        .await;
    let case: uuid::Uuid = serde_json::from_str::<serde_json::Value>(&res).unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let answer = r#"{"meta": {}, "resources": [{"device_id": "dev-1", "hostname": "ws-042", "status": "normal"}], "errors": []}"#;
    let (got, missing) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let tx = app.state.store.begin_tenant(a).await.unwrap();
    let logged = r#"{"messages": [{"message": {"_id": "m1", "timestamp": "2026-11-22 08:58:00.000", "source": "dc-01", "message": "TGT for m.rossi"}}], "total_results": 1}"#;
    for (id, source, subject, response, error) in [
        (
            got,
            "crowdstrike.device",
            "host:ws-042",
            Some(answer.to_owned()),
            None,
        ),
        (
            missing,
            "crowdstrike.device",
            "user:m.rossi",
            None,
            Some("the vendor failed (HTTP 503)".to_owned()),
        ),
        (
            uuid::Uuid::now_v7(),
            "graylog.messages",
            "user:m.rossi",
            Some(logged.to_owned()),
            None,
        ),
    ] {
        evidence::Entity::insert(evidence::ActiveModel {
            id: Set(id),
            tenant_id: Set(a.0),
            case_id: Set(case),
            round: Set(1),
            integration_id: Set(uuid::Uuid::now_v7()),
            source: Set(source.into()),
            subject: Set(subject.into()),
            request: Set("GET /devices/queries/devices/v1?filter=hostname:'ws-042'".into()),
            status: Set(if response.is_some() {
                "collected"
            } else {
                "not_collected"
            }
            .into()),
            response: Set(response),
            error: Set(error),
            collected_at: Set(vigil_orchestrator::Clock::now(app.clock.as_ref())),
        })
        .exec(&*tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let (s, res) = app
        .call(&ann, Method::GET, &format!("/api/v1/evidence/{got}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{res}");
    let v: serde_json::Value = serde_json::from_str(&res).unwrap();
    assert_eq!(v["response"]["resources"][0]["device_id"], "dev-1");
    assert_eq!(
        (v["case_id"].as_str(), v["status"].as_str()),
        (Some(case.to_string().as_str()), Some("collected"))
    );
    let (s, res) = app
        .call(&bea, Method::GET, &format!("/api/v1/evidence/{got}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's item: {res}");
    assert!(res.contains(r#""code""#), "the error shape: {res}");
    let (s, _) = app
        .call(&exec, Method::GET, &format!("/api/v1/evidence/{got}"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no raw telemetry for executives");
    let (s, _) = app
        .call(&ann, Method::GET, "/api/v1/evidence/not-an-id", None)
        .await;
    assert!(s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST, "{s}");
    let (_, res) = app
        .call(&ann, Method::GET, &format!("/api/v1/cases/{case}"), None)
        .await;
    let v: serde_json::Value = serde_json::from_str(&res).unwrap();
    assert_eq!(v["evidence"].as_array().map(Vec::len), Some(3), "{res}");
    // The timeline API carries the logged event, pointing at its item.
    let (_, res) = app
        .call(&ann, Method::GET, &format!("/api/v1/cases/{case}/timeline"), None)
        .await;
    let v: serde_json::Value = serde_json::from_str(&res).unwrap();
    assert_eq!(v["enrichment"][0]["summary"], "TGT for m.rossi", "{res}");
    assert_eq!(
        v["enrichment"][0]["pointer"], "/messages/0/message/message",
        "{res}"
    );

    let page = page_get;
    let (s, html, _) = app
        .send(page(&ann, &format!("/evidence/{got}?at=/resources/0/status")))
        .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains(r#"class="line cited" id="cited""#), "{html}");
    assert!(html.contains("a removed integration"), "{html}");
    let (_, html, _) = app.send(page(&ann, &format!("/evidence/{missing}"))).await;
    assert!(html.contains("the vendor failed (HTTP 503)"), "{html}");
    let (s, _, _) = app.send(page(&bea, &format!("/evidence/{got}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, html, _) = app.send(page(&ann, &format!("/cases/{case}"))).await;
    assert!(html.contains(&format!("/evidence/{got}")), "{html}");
    assert!(
        html.contains("not collected: the vendor failed (HTTP 503)"),
        "{html}"
    );
}

mod evidence_page {
    #[tokio::test]
    async fn sqlite() {
        super::evidence_items(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::evidence_items(super::Backend::Postgres).await
    }
}

/// A case of 450 alerts: its page shows the timeline and the alert list 200
/// at a time, in event-time order, with links to the rest; a window past
/// the end is empty and a mangled one is the start, never an error.
async fn long_case_pages(backend: Backend) {
    use serde_json::json;
    use vigil_orchestrator::audit::Actor;
    use vigil_orchestrator::{connect::integrations, pipeline::ingest};
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let ann = app.session(Some(a), Role::AnalystEdit, false).await;
    let clock = app.clock.as_ref();
    let tx = app.state.store.begin_tenant(a).await.unwrap();
    let hook = integrations::create(&tx, clock, &Actor::cli(), "webhook", "feed", json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let start = vigil_orchestrator::Clock::now(clock) - chrono::Duration::hours(4);
    // Delivered newest first: the pages follow event time, not arrival.
    let texts: Vec<String> = (0..450)
        .rev()
        .map(|i| {
            json!({
                "@timestamp": (start + chrono::Duration::seconds(i * 20)).to_rfc3339(),
                "event": {"id": format!("long-{i}"), "kind": "alert"},
                "host": {"name": "long-ws-1"}, "message": format!("Step {i:03} on long-ws-1"),
            })
            .to_string()
        })
        .collect();
    let mut case = None;
    for chunk in texts.chunks(150) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let tx = app.state.store.begin_tenant(a).await.unwrap();
        let ids = ingest::store_checked(&tx, clock, hook.id, ingest::check("auto", &refs).unwrap())
            .await
            .unwrap()
            .alert_ids;
        case = ingest::get(&tx, ids[0]).await.unwrap().1;
        tx.commit().await.unwrap();
    }
    let case = case.unwrap();
    let steps = |html: &str| -> Vec<u32> {
        html.split("Step ")
            .skip(1)
            .filter_map(|s| s.get(..3)?.parse().ok())
            .collect()
    };
    let timeline = |html: &str| -> String {
        let from = html.find("id=\"timeline\"").unwrap();
        let to = html[from..].find("</section>").unwrap();
        html[from..from + to].to_owned()
    };
    let (s, html, _) = app.send(page_get(&ann, &format!("/cases/{case}"))).await;
    assert_eq!(s, StatusCode::OK);
    let first = timeline(&html);
    assert_eq!(
        steps(&first),
        (0..200).collect::<Vec<_>>(),
        "the first 200 by event time"
    );
    assert!(first.contains("Alerts 1–200 of 450"), "{first}");
    assert!(first.contains("?events=200#timeline") && first.contains("Later (250 more)"));
    assert!(!first.contains("rel=\"prev\""));
    assert_eq!(html.matches("name=\"alert\"").count(), 200, "the alert list too");
    assert!(html.contains("?alerts=200#alerts"));
    let (_, html, _) = app
        .send(page_get(&ann, &format!("/cases/{case}?events=400")))
        .await;
    let last = timeline(&html);
    assert_eq!(steps(&last), (400..450).collect::<Vec<_>>());
    assert!(last.contains("?events=200#timeline") && !last.contains("rel=\"next\""));
    let (_, html, _) = app
        .send(page_get(&ann, &format!("/cases/{case}?alerts=400")))
        .await;
    assert_eq!(html.matches("name=\"alert\"").count(), 50);
    for (q, expect) in [
        ("events=9999999", 0),
        ("events=-1", 200),
        ("events=abc", 200),
        ("events=99999999999999999999999", 200),
    ] {
        let (s, html, _) = app.send(page_get(&ann, &format!("/cases/{case}?{q}"))).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert_eq!(steps(&timeline(&html)).len(), expect, "{q}");
    }
}

mod long_case_pages {
    #[tokio::test]
    async fn sqlite() {
        super::long_case_pages(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::long_case_pages(super::Backend::Postgres).await
    }
}
