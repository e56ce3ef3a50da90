//! Issue 12: second factors that cannot be guessed, and login answers that
//! do not tell which accounts exist.

use super::*;

fn form(body: &str, cookie: Option<&str>, uri: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("vigil_session={c}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::COOKIE, format!("vigil_session={cookie}"))
        .body(Body::empty())
        .unwrap()
}

/// A tenant admin with a password and TOTP enrolled; returns the base32
/// secret.
async fn admin_with_totp(app: &App, email: &str) -> String {
    let t = app.tenant(&format!("T-{email}")).await;
    let email = Email::parse(email).unwrap();
    let tx = app.state.store.begin_platform().await.unwrap();
    let user = identity::upsert_local_user(
        &tx,
        app.clock.as_ref(),
        &Actor::cli(),
        &email,
        cheap().hash("correct horse battery").unwrap(),
        false,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let tx = app.state.store.begin_tenant(t).await.unwrap();
    identity::add_member(&tx, app.clock.as_ref(), &Actor::cli(), &email, Role::TenantAdmin)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let s = auth::create_session(&app.state.store, app.clock.as_ref(), user, Some(t))
        .await
        .unwrap();
    let (secret, _) = auth::begin_totp(&app.state.store, &app.key, user, email.as_str())
        .await
        .unwrap();
    let code = auth::totp_code(&secret, app.clock.now()).unwrap();
    auth::verify_totp(
        &app.state.store,
        app.clock.as_ref(),
        &app.key,
        s.id,
        user,
        &code,
        None,
    )
    .await
    .unwrap()
    .verified()
    .expect("enrolled");
    secret
}

/// A password login: the session cookie and its CSRF token (MFA pending).
async fn password_login(app: &App, email: &str) -> (String, String) {
    let (s, _, h) = app
        .send(form(
            &format!(
                "email={}&password=correct+horse+battery",
                email.replace('@', "%40")
            ),
            None,
            "/login",
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "login of {email}");
    let cookie = session_of(&h);
    let (_, page, _) = app.send(get("/mfa", &cookie)).await;
    (cookie.clone(), csrf_of(&page))
}

async fn count(app: &App, sql: &str) -> i64 {
    count_in(app, None, sql).await
}

/// Runs the futures at once (on this task), in order of their answers' index.
async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

fn wrong_code(right: &str, i: usize) -> String {
    let w = format!("{:06}", (i * 7919) % 1_000_000);
    if w == right {
        format!("{:06}", (i * 7919 + 1) % 1_000_000)
    } else {
        w
    }
}

pub(super) async fn second_factor_cannot_be_guessed(backend: Backend) {
    let app = app(backend).await;
    let email = "adm@guess.example";
    let secret = admin_with_totp(&app, email).await;
    app.clock.advance(chrono::Duration::seconds(60));

    // One session, 1,000 wrong codes: five are checked, then the account's
    // second factor is locked; the right code inside the lock is refused too.
    let (cookie, csrf) = password_login(&app, email).await;
    let right = auth::totp_code(&secret, app.clock.now()).unwrap();
    let mut checked = 0;
    for i in 0..1000 {
        let (s, page, h) = app
            .send(form(
                &format!("csrf={csrf}&code={}", wrong_code(&right, i)),
                Some(&cookie),
                "/mfa",
            ))
            .await;
        match s {
            StatusCode::UNPROCESSABLE_ENTITY => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(page.contains("Too many wrong codes"), "{page}");
                assert!(h.contains_key(header::RETRY_AFTER));
            }
            other => panic!("wrong code {i}: {other} {page}"),
        }
    }
    assert_eq!(
        checked,
        auth::MFA_FAILURES_BEFORE_LOCK - 1,
        "the fifth sets the lock"
    );
    let (s, _, _) = app
        .send(form(&format!("csrf={csrf}&code={right}"), Some(&cookie), "/mfa"))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "the right code inside the lock");
    let (s, _, _) = app.send(get("/api/v1/members", &cookie)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "still no MFA");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'mfa.locked'"
        )
        .await,
        1,
        "one audit row per lockout, not per refused attempt"
    );
    // The account's next password login waits for the lock too, with the
    // same answer as a password lockout.
    let (s, page, _) = app
        .send(form(
            "email=adm%40guess.example&password=correct+horse+battery",
            None,
            "/login",
        ))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(page.contains("Too many failed attempts"));

    // After the lock the right code works (and resets the count).
    app.clock
        .advance(auth::MFA_FIRST_LOCK + chrono::Duration::seconds(1));
    let right = auth::totp_code(&secret, app.clock.now()).unwrap();
    let (s, _, _) = app
        .send(form(&format!("csrf={csrf}&code={right}"), Some(&cookie), "/mfa"))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "verified after the lock");

    // Many sessions of one account, 20 wrong codes each (1,000 in all,
    // interleaved): the lock is the account's, so again only five are checked.
    app.clock.advance(chrono::Duration::seconds(60));
    let mut sessions = Vec::new();
    for _ in 0..50 {
        sessions.push(password_login(&app, email).await);
    }
    let right = auth::totp_code(&secret, app.clock.now()).unwrap();
    let mut checked = 0;
    for round in 0..20 {
        for (n, (cookie, csrf)) in sessions.iter().enumerate() {
            let code = wrong_code(&right, round * 50 + n + 7);
            let (s, _, _) = app
                .send(form(&format!("csrf={csrf}&code={code}"), Some(cookie), "/mfa"))
                .await;
            assert!(
                matches!(
                    s,
                    StatusCode::UNPROCESSABLE_ENTITY | StatusCode::TOO_MANY_REQUESTS
                ),
                "{s}"
            );
            checked += usize::from(s == StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
    assert_eq!(checked, 4);
    let (cookie, csrf) = &sessions[0];
    let (s, _, _) = app
        .send(form(&format!("csrf={csrf}&code={right}"), Some(cookie), "/mfa"))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);

    // Concurrent guesses cannot outrun the lock: each attempt is counted
    // before it is checked, so of 100 at once at most five are checked.
    app.clock
        .advance(auth::MFA_MAX_LOCK + chrono::Duration::seconds(1));
    let right = auth::totp_code(&secret, app.clock.now()).unwrap();
    let (c0, k0) = password_login(&app, email).await;
    // (a verified login first resets the account's count)
    let (s, _, _) = app
        .send(form(&format!("csrf={k0}&code={right}"), Some(&c0), "/mfa"))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    app.clock.advance(chrono::Duration::seconds(60));
    let right = auth::totp_code(&secret, app.clock.now()).unwrap();
    let attempts = sessions
        .iter()
        .cycle()
        .take(100)
        .enumerate()
        .map(|(i, (cookie, csrf))| {
            let code = wrong_code(&right, i + 1000);
            app.send(form(&format!("csrf={csrf}&code={code}"), Some(cookie), "/mfa"))
        });
    let statuses: Vec<StatusCode> = futures_join_all(attempts)
        .await
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert!(
        checked <= 4,
        "{checked} wrong codes checked at once: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| matches!(
        *s,
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::TOO_MANY_REQUESTS
    )));
    let (cookie, csrf) = &sessions[1];

    // Recovery codes share the count (a wrong one is a wrong factor).
    let (s, _, _) = app
        .send(form(
            &format!("csrf={csrf}&code=aaaaa-aaaaa"),
            Some(cookie),
            "/mfa",
        ))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);

    // A session that keeps guessing across locks is ended at its limit.
    app.clock
        .advance(auth::MFA_FIRST_LOCK + chrono::Duration::seconds(1));
    let (cookie, csrf) = password_login(&app, email).await;
    let (mut wrong, mut tries) = (0, 0);
    let ended = loop {
        tries += 1;
        assert!(tries < 100, "the session was never ended");
        let right = auth::totp_code(&secret, app.clock.now()).unwrap();
        let (s, page, h) = app
            .send(form(
                &format!("csrf={csrf}&code={}", wrong_code(&right, wrong + 3)),
                Some(&cookie),
                "/mfa",
            ))
            .await;
        match s {
            StatusCode::UNPROCESSABLE_ENTITY => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: i64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
                // (the attempt that set a lock counted for the session too)
                app.clock.advance(chrono::Duration::seconds(wait + 1));
            }
            StatusCode::UNAUTHORIZED => break page,
            other => panic!("{other} {page}"),
        }
    };
    assert!(ended.contains("Signed out"), "{ended}");
    assert_eq!(
        app.send(get("/api/v1/me", &cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'mfa.session_ended'"
        )
        .await,
        1
    );
}

pub(super) async fn login_answers_alike_for_unknown_accounts(backend: Backend) {
    let app = app(backend).await;
    let _ = admin_with_totp(&app, "real@alike.example").await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let (s, page, _) = app
                .send(form(
                    &format!("email={email}&password={password}"),
                    None,
                    "/login",
                ))
                .await;
            (
                s,
                (),
                page.contains("Too many failed attempts"),
                page.contains("Wrong e-mail or password"),
            )
        }
    };
    for i in 0..7 {
        let real = attempt("real%40alike.example", "wrong+password+x").await;
        let unknown = attempt("nobody%40alike.example", "wrong+password+x").await;
        assert_eq!(real.0, unknown.0, "attempt {i}: the same status");
        assert_eq!(
            (real.2, real.3),
            (unknown.2, unknown.3),
            "attempt {i}: the same words"
        );
        let expect = if i + 1 >= auth::FAILURES_BEFORE_LOCK as usize {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(real.0, expect, "attempt {i}");
    }
    // The right password inside the lock: refused as the unknown one is.
    let real = attempt("real%40alike.example", "correct+horse+battery").await;
    let unknown = attempt("nobody%40alike.example", "correct+horse+battery").await;
    assert_eq!((real.0, real.2), (unknown.0, unknown.2));
    assert_eq!(real.0, StatusCode::TOO_MANY_REQUESTS);
    // Case and spaces of the address do not reset the unknown one's count.
    let other_case = attempt("NOBODY%40alike.example", "x").await;
    assert_eq!(other_case.0, StatusCode::TOO_MANY_REQUESTS);
}

/// The provider API over HTTP: create, change (fields checked and named,
/// unknown ones refused), disable, delete; a tenant admin with MFA only.
pub(super) async fn sso_provider_lifecycle_over_http(backend: Backend) {
    use serde_json::{Value, json};
    let app = app(backend).await;
    let a = app.tenant("A").await;
    let admin = app.session(Some(a), Role::TenantAdmin, true).await;
    let no_mfa = app.session(Some(a), Role::TenantAdmin, false).await;
    // The provider is checked when it is configured: an issuer that does
    // not answer, one whose document names another issuer, and one without
    // a signing key are refused, naming the problem; nothing is written.
    let (idp_run, idp) = vigil::sim::oidc::start().await;
    let create = |issuer: String| {
        app.call(
            &admin,
            Method::POST,
            "/api/v1/sso/providers",
            Some(json!({"name": "Okta", "issuer": issuer, "client_id": "vigil",
                        "role_map": {"soc": "analyst_edit"}, "domains": ["example.com"], "scopes": ["profile"]})),
        )
    };
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    *idp.issuer.lock().unwrap() = Some("https://elsewhere.example".into());
    let keys = std::mem::take(&mut *idp.keys.lock().unwrap());
    for (issuer, problem, fix) in [
        (dead, "unreachable", 0),
        (idp_run.base(), "issuer", 1),
        (idp_run.base(), "no signing key for RS256", 2),
    ] {
        let (s, body) = create(issuer).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "invalid", "{body}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("issuer: ") && msg.contains(problem), "{body}");
        match fix {
            1 => *idp.issuer.lock().unwrap() = None,
            2 => *idp.keys.lock().unwrap() = keys.clone(),
            _ => {}
        }
    }
    let (s, body) = create(idp_run.base()).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    // A test of the provider later: fine, then without its keys.
    let test = format!("/api/v1/sso/providers/{id}/test");
    let (s, body) = app.call(&admin, Method::POST, &test, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (t["ok"].clone(), t["discovery"]["signing_keys"].clone()),
        (json!(true), json!(1)),
        "{body}"
    );
    idp.keys.lock().unwrap().clear();
    let (s, body) = app.call(&admin, Method::POST, &test, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["ok"], false, "{body}");
    assert!(
        t["problem"].as_str().unwrap().contains("no signing key"),
        "{body}"
    );
    let (s, _) = app.call(&no_mfa, Method::POST, &test, None).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a session without its second factor, as for the list"
    );
    assert_eq!(v["domains"], json!(["example.com"]));
    assert_eq!(v["enabled"], true);
    let path = format!("/api/v1/sso/providers/{id}");
    let put = |body: Value| app.call(&admin, Method::PUT, &path, Some(body));
    let (s, body) = put(json!({"domains": ["example.com", "corp.example"], "trust_idp_mfa": true})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("corp.example"), "{body}");
    for (bad, names) in [
        (json!({"domain": ["x.example"]}), "domain"),
        (json!({"domains": ["*.example"]}), "domains"),
        (json!({"group_claim": ""}), "group_claim"),
        (json!({"scopes": ["a b"]}), "scopes"),
        (json!({"name": "x\u{7}"}), "name"),
        (json!({"email_authoritative": true}), "SAML"),
    ] {
        let (s, body) = put(bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(names),
            "{bad}: {body}"
        );
    }
    let (s, _) = app
        .call(&no_mfa, Method::PUT, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "MFA first");
    let (s, body) = put(json!({"enabled": false})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("\"enabled\":false"), "{body}");
    let (s, _) = app.call(&admin, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.call(&admin, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = app.call(&admin, Method::GET, "/api/v1/sso/providers", None).await;
    assert!(list.contains("\"total\":0"), "{list}");
    assert_eq!(
        count_in(
            &app,
            Some(a),
            "SELECT COUNT(*) AS n FROM audit_events WHERE action LIKE 'sso.provider_%'"
        )
        .await,
        4,
        "created, changed twice (the refused changes wrote nothing), deleted"
    );
}
