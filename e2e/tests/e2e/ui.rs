//! The web UI in a real browser: `vigil demo` on PostgreSQL (as the
//! non-superuser serving role, so RLS applies), Debian's Chromium over
//! WebDriver, each demo role doing its job through the pages. axe-core
//! runs on every key page; screenshots of each key screen at 1280 and
//! 390 px are kept in `target/e2e-artifacts/`.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigil_e2e::browser::{Browser, DESKTOP, PHONE};
use vigil_e2e::{PATIENCE, Server, http, line_after, run, vigil};
use vigil_orchestrator::testkit::{TestDb, pg_admin_url, with_database};

struct Demo {
    server: Server,
    /// role → (e-mail, password)
    accounts: HashMap<String, (String, String)>,
    tenant: String,
    db_url: String,
    db_name: String,
    _cwd: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let admin = pg_admin_url();
        let db_name = TestDb::create_pg_database(&admin).await;
        let db_url = with_database(&admin, &db_name);
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = vigil(cwd.path());
        cmd.args(["demo", "--listen", "127.0.0.1:0"])
            .env("VIGIL_DATABASE_URL", &db_url);
        let server = Server::start(cmd).await.expect("demo starts");
        let out = server.stdout();
        let mut accounts = HashMap::new();
        for role in [
            "platform_admin",
            "tenant_admin",
            "security_engineer",
            "analyst_edit",
            "analyst_read",
            "executive",
        ] {
            let line = line_after(&out, role).unwrap_or_else(|| panic!("{role} printed:\n{out}"));
            let f: Vec<_> = line.split_whitespace().collect();
            accounts.insert(role.to_owned(), (f[0].to_owned(), f[1].to_owned()));
        }
        let tenant = out
            .split("Demo tenant \"Demo SOC\" (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap()
            .to_owned();
        let demo = Demo {
            server,
            accounts,
            tenant,
            db_url,
            db_name,
            _cwd: cwd,
        };
        demo.settle().await;
        demo
    }

    fn account(&self, role: &str) -> (&str, &str) {
        let (e, p) = &self.accounts[role];
        (e, p)
    }

    async fn token(&self, role: &str) -> String {
        let mut cmd = vigil(self._cwd.path());
        cmd.args(["admin", "create-token", "--tenant", &self.tenant, "--role", role])
            .env("VIGIL_DATABASE_URL", &self.db_url);
        let f = run(cmd).await;
        assert!(f.status.success(), "{}", f.stderr);
        f.stdout.trim().to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        http()
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the demo's investigations have run (no step waiting or
    /// running, and some succeeded).
    async fn settle(&self) {
        let token = self.token("analyst_read").await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let busy = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
            let pending = self.get(&token, "/api/v1/steps?state=pending&limit=500").await;
            let running = self.get(&token, "/api/v1/steps?state=running&limit=500").await;
            let done = self.get(&token, "/api/v1/steps?state=succeeded&limit=5").await;
            if busy(&pending) + busy(&running) == 0 && busy(&done) > 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "investigations never settled: {pending}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        let _ = self.server.terminate().await;
        TestDb::drop_pg_database(&pg_admin_url(), &self.db_name);
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn no_serious_axe(b: &Browser, page: &str) {
    let v = b.axe().await;
    assert!(v.is_empty(), "axe on {page} ({}): {v:#?}", b.path().await);
}

/// Signs in as a role that requires MFA, enrolling on the way.
/// A new browser at the login page, sent to the identity provider by the
/// single sign-on form with `email`.
async fn single_sign_on_from_the_login_page(demo: &Demo, email: &str) -> Browser {
    let person = Browser::start(&demo.server.url(""), DESKTOP).await;
    person.goto("/login").await;
    person
        .fill("form[action='/login/sso'] input[name=email]", email)
        .await;
    person.click("form[action='/login/sso'] button").await;
    person
}

async fn sign_in_with_mfa(b: &Browser, email: &str, password: &str) {
    b.goto("/login").await;
    b.fill("input[name=email]", email).await;
    b.fill("input[name=password]", password).await;
    b.click("form[action='/login'] button").await;
    b.wait_text("Second factor").await;
    enrol_mfa(b).await;
}

/// What a person with an authenticator app does: enrol on the MFA page and
/// verify; returns the TOTP secret.
async fn enrol_mfa(b: &Browser) -> String {
    b.goto("/mfa").await;
    b.click("form[action='/mfa/enroll'] button").await;
    let secret = b.find("#totp-secret").await.text().await.unwrap();
    // A wrong code first: the refusal shows in place.
    b.fill("input[name=code]", "000000").await;
    b.click("form[action='/mfa'] button").await;
    b.wait_text("That code is not valid").await;
    let code = vigil_orchestrator::identity::auth::totp_code(
        &secret,
        vigil_orchestrator::Clock::now(&vigil_orchestrator::clock::SystemClock),
    )
    .unwrap();
    b.fill("input[name=code]", &code).await;
    b.click("form[action='/mfa'] button").await;
    b.wait_text("recovery").await;
    secret
}

/// An analyst works a case from the queue: opens it, follows a citation
/// to the highlighted field, rejects one draft with a reason and approves
/// another (with the confirmation step); an executive then reads the
/// approved brief, sees no control, and a forged POST from that session is
/// refused.
#[tokio::test]
async fn an_analyst_works_a_case_and_an_executive_reads_the_brief() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("analyst_edit");
    b.sign_in(email, password).await;
    // Role-aware navigation: the analyst's areas, not the admin's.
    let nav = b.find("nav.top").await.text().await.unwrap();
    assert!(nav.contains("Cases") && nav.contains("Approvals"), "{nav}");
    assert!(!nav.contains("Integrations"), "{nav}");
    b.click("nav.top a[href='/cases']").await;
    b.find("table.queue tbody tr").await;
    assert!(b.text().await.contains("case(s)"));
    b.keep("cases-1280").await;
    no_serious_axe(&b, "the case queue").await;
    // Filters: high-severity only, then a title search that matches nothing.
    b.goto("/cases?severity=high").await;
    for sev in b.all("table.queue .sev").await {
        assert_eq!(sev.text().await.unwrap(), "high");
    }
    b.goto("/cases?q=no-such-title-anywhere").await;
    b.wait_text("No case matches.").await;

    // Open the first case of the queue.
    b.goto("/cases").await;
    b.click("table.queue tbody tr a").await;
    b.wait_text("Round 1").await;
    let text = b.text().await;
    assert!(
        text.contains("Round 1: complete") || text.contains("Round 1: awaiting_decision"),
        "the round ran: {text}"
    );
    assert!(
        text.contains("Collect evidence") && text.contains("Propose actions"),
        "{text}"
    );
    let case_path = b.path().await;
    b.keep("case-1280").await;
    no_serious_axe(&b, "the case page").await;

    // A citation opens the alert with the cited field highlighted.
    let cite = b.find("#draft a.cite").await;
    let href = cite.attr("href").await.unwrap().unwrap();
    let pointer = percent_decode(href.split("at=").nth(1).unwrap().split('#').next().unwrap());
    cite.click().await.unwrap();
    let cited = b.find("#cited").await;
    let last = pointer.rsplit('/').next().unwrap().to_owned();
    let shown = cited.text().await.unwrap();
    assert!(
        shown.contains(&last) || pointer.ends_with(char::is_numeric),
        "the cited line {shown:?} is {pointer}"
    );
    assert!(!b.all("pre.raw .line.cited").await.is_empty());
    b.keep("alert-1280").await;
    no_serious_axe(&b, "the evidence viewer").await;

    // A citation of what an integration said (the demo's loopback
    // CrowdStrike and Graylog, read by the investigation's collect step)
    // opens that evidence item, the cited field highlighted.
    b.goto(&case_path).await;
    let text = b.text().await;
    assert!(text.contains("Evidence from integrations"), "{text}");
    assert!(text.contains("Sequence the timeline"), "{text}");
    assert!(
        !b.all("#timeline a[href^='/evidence/']").await.is_empty(),
        "the timeline holds the logged events: {text}"
    );
    let cite = b.find("#draft a.cite[href^='/evidence/']").await;
    cite.click().await.unwrap();
    b.find("#cited").await;
    let text = b.text().await;
    assert!(
        text.contains("Evidence:")
            && (text.contains("CrowdStrike (demo simulator)") || text.contains("Graylog (demo simulator)")),
        "{text}"
    );
    assert!(!b.all("pre.raw .line.cited").await.is_empty());
    b.keep("evidence-1280").await;
    no_serious_axe(&b, "an evidence item").await;

    // Reject the draft with a reason.
    b.goto(&case_path).await;
    b.fill(
        "#draft form[action$='/reject'] input[name=reason]",
        "The beaconing is the backup agent",
    )
    .await;
    b.click("#draft form[action$='/reject'] button").await;
    b.wait_text("The beaconing is the backup agent").await;
    let state = b.find("#draft .state").await.text().await.unwrap();
    assert_eq!(state, "rejected");

    // Approve the draft of another case (a confirmation first).
    b.goto("/cases").await;
    let second = b.all("table.queue tbody tr a").await;
    let mut approved_case = None;
    for a in second {
        let h = a.attr("href").await.unwrap().unwrap();
        if h != case_path {
            approved_case = Some(h);
            break;
        }
    }
    let approved_case = approved_case.expect("a second case");
    b.goto(&approved_case).await;
    let title = b.find("h1").await.text().await.unwrap();
    // By keyboard: y approves, after the same confirmation.
    b.find("#draft form[action$='/approve'] button").await;
    b.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'y'}));")
        .await;
    b.confirm().await;
    b.wait_text("decided by").await;
    assert_eq!(b.find("#draft .state").await.text().await.unwrap(), "approved");

    // Edit-then-approve on a third case: the edit is the approved version,
    // the diff kept and shown.
    b.goto("/cases").await;
    let mut third = None;
    for a in b.all("table.queue tbody tr a").await {
        let h = a.attr("href").await.unwrap().unwrap();
        if h != case_path && h != approved_case {
            third = Some(h);
            break;
        }
    }
    b.goto(&third.expect("a third case")).await;
    b.click("#draft details.edit summary").await;
    b.fill(
        "#draft form.edit-form textarea[name='summary.0']",
        "Beaconing from one workstation; the analyst confirmed it.",
    )
    .await;
    b.click("#draft form.edit-form button").await;
    b.confirm().await;
    b.wait_text("What the person changed").await;
    let text = b.text().await;
    assert!(text.contains("the analyst confirmed it"), "{text}");
    assert!(
        text.contains("Version 2") && text.contains("edit of version 1"),
        "{text}"
    );
    assert_eq!(b.find("#draft .state").await.text().await.unwrap(), "approved");
    b.close().await;

    // The executive: briefs only, no controls, forged writes refused.
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("executive");
    b.sign_in(email, password).await;
    let home = b.text().await;
    assert!(!home.contains("Second factor not verified"), "{home}");
    let nav = b.find("nav.top").await.text().await.unwrap();
    assert_eq!(
        nav.split_whitespace().collect::<Vec<_>>(),
        ["Dashboard", "Briefs"],
        "{nav}"
    );
    // The dashboard: charts drawn on the server (SVG, no script needed),
    // the formulas of MTTA and MTTR, the numbers as a table.
    b.click("nav.top a[href='/dashboard']").await;
    let text = b.wait_text("MTTA").await;
    assert!(text.contains("Open cases") && text.contains("MTTR"), "{text}");
    assert_eq!(b.all("svg.chart").await.len(), 2);
    assert!(
        !b.all("svg.chart rect").await.is_empty(),
        "the demo's cases are drawn"
    );
    let html = b.client.source().await.unwrap();
    assert!(
        html.contains("the time from the case opening to the first decision"),
        "formula shown"
    );
    assert!(
        b.all("main form").await.is_empty(),
        "no controls on the dashboard"
    );
    b.keep("dashboard-1280").await;
    no_serious_axe(&b, "the dashboard").await;
    b.click("nav.top a[href='/briefs']").await;
    b.wait_text(&title).await;
    b.keep("briefs-1280").await;
    no_serious_axe(&b, "the briefs list").await;
    b.click("ul.briefs a").await;
    b.wait_text("Brief version").await;
    // No control but Sign out; no link into evidence.
    let forms = b.all("main form").await;
    assert!(forms.is_empty(), "the brief has no controls");
    assert!(b.all("main a.cite").await.is_empty());
    no_serious_axe(&b, "a brief").await;
    // A forged approval from this session (its own CSRF token) is refused.
    let status = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('input[name=csrf]').value;
             fetch('/gates/00000000-0000-0000-0000-000000000000/approve', {method: 'POST',
               headers: {'content-type': 'application/x-www-form-urlencoded'},
               body: 'csrf=' + encodeURIComponent(csrf) + '&payload_hash=x'}).then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    // The analyst's pages are not the executive's.
    b.goto("/cases").await;
    b.wait_text("Not allowed").await;
    b.close().await;
    demo.stop().await;
}

/// Every error path shows its message: a wrong password, a wrong TOTP
/// code, a forbidden page, a stale approval; an expired session goes to
/// the login page and back; the kill-switch banner is on every page while
/// engaged.
#[tokio::test]
async fn errors_show_in_the_page_and_the_kill_switch_on_every_page() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    // A wrong password (401 under hx-boost): the message is shown.
    b.goto("/login").await;
    b.fill("input[name=email]", "analyst-edit@demo.vigil.test").await;
    b.fill("input[name=password]", "not-the-password").await;
    b.click("form[action='/login'] button").await;
    b.wait_text("Wrong e-mail or password.").await;
    assert_eq!(b.path().await, "/login");
    no_serious_axe(&b, "the login page").await;
    // Single sign-on: the demo tenant has no identity provider, and the
    // page says so (the password form stays).
    b.fill(
        "form[action='/login/sso'] input[name=email]",
        "ann@demo.vigil.test",
    )
    .await;
    b.click("form[action='/login/sso'] button").await;
    b.wait_text("No single sign-on is set up").await;
    assert!(
        !b.all("form[action='/login'] input[name=password]")
            .await
            .is_empty()
    );

    // An expired session: to the login page, and back after signing in.
    let (email, password) = demo.account("analyst_edit");
    b.goto("/cases?state=all").await;
    assert!(b.path().await.starts_with("/login?next="), "{}", b.path().await);
    b.fill("input[name=email]", email).await;
    b.fill("input[name=password]", password).await;
    b.click("form[action='/login'] button").await;
    b.wait_text("case(s)").await;
    assert_eq!(b.path().await, "/cases?state=all");

    // A stale approval (409): someone decided the gate meanwhile.
    b.goto("/gates").await;
    let form = b.find("section.gate form[action$='/approve']").await;
    let action = form.attr("action").await.unwrap().unwrap();
    let id = action
        .trim_start_matches("/gates/")
        .trim_end_matches("/approve")
        .to_owned();
    let token = demo.token("analyst_edit").await;
    let g = demo.get(&token, &format!("/api/v1/gates/{id}")).await;
    let r = http()
        .post(demo.server.url(&format!("/api/v1/gates/{id}/approve")))
        .bearer_auth(&token)
        .json(&json!({"payload_hash": g["payload_hash"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    b.click(&format!("#gate-{id} form[action$='/approve'] button"))
        .await;
    b.confirm().await;
    b.wait_text("Conflict").await;

    // A forbidden page: the analyst has no integrations page.
    b.goto("/integrations").await;
    b.wait_text("Not allowed").await;

    // The kill switch (engaged by the security engineer's token): a banner
    // on every page.
    let se = demo.token("security_engineer").await;
    let r = http()
        .put(demo.server.url("/api/v1/kill-switch"))
        .bearer_auth(&se)
        .json(&json!({"engaged": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for page in ["/", "/cases", "/gates", "/briefs"] {
        b.goto(page).await;
        let banner = b.find("#kill-banner").await.text().await.unwrap();
        assert!(banner.contains("Kill switch engaged"), "{page}: {banner}");
    }
    b.keep("kill-switch-1280").await;
    b.close().await;

    // A wrong TOTP code (422) shows in place, then enrolment completes.
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("tenant_admin");
    sign_in_with_mfa(&b, email, password).await;
    b.close().await;
    demo.stop().await;
}

/// Key pages at a phone's width: nothing wider than the screen, every
/// control reachable; axe passes; screenshots kept.
#[tokio::test]
async fn key_pages_fit_a_phone() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), PHONE).await;
    let (email, password) = demo.account("analyst_edit");
    b.sign_in(email, password).await;
    let inner = b.js("return window.innerWidth").await.as_u64().unwrap();
    for (name, path) in [("home", "/"), ("cases", "/cases"), ("gates", "/gates")] {
        b.goto(path).await;
        b.find("main h1").await;
        assert!(
            b.page_width().await <= inner,
            "{path} is {} px wide at {inner}",
            b.page_width().await
        );
        b.keep(&format!("{name}-390")).await;
        no_serious_axe(&b, path).await;
    }
    b.goto("/cases").await;
    b.click("table.queue tbody tr a").await;
    b.wait_text("Round 1").await;
    assert!(
        b.page_width().await <= inner,
        "a case is {} px wide",
        b.page_width().await
    );
    b.keep("case-390").await;
    b.close().await;

    // The executive's dashboard.
    let b = Browser::start(&demo.server.url(""), PHONE).await;
    let (email, password) = demo.account("executive");
    b.sign_in(email, password).await;
    b.goto("/dashboard").await;
    b.find("svg.chart").await;
    assert!(
        b.page_width().await <= inner,
        "the dashboard is {} px wide",
        b.page_width().await
    );
    b.keep("dashboard-390").await;
    b.close().await;

    // The tenant admin's integrations page (an MFA role).
    let b = Browser::start(&demo.server.url(""), PHONE).await;
    let (email, password) = demo.account("tenant_admin");
    sign_in_with_mfa(&b, email, password).await;
    for (name, path) in [
        ("integrations", "/integrations"),
        ("members", "/members"),
        ("single-sign-on", "/single-sign-on"),
        ("settings", "/settings"),
        ("audit", "/audit"),
    ] {
        b.goto(path).await;
        b.find("main h1").await;
        assert!(
            b.page_width().await <= inner,
            "{path} is {} px wide",
            b.page_width().await
        );
        b.keep(&format!("{name}-390")).await;
        no_serious_axe(&b, path).await;
    }
    b.close().await;

    // The security engineer's tuning page.
    let b = Browser::start(&demo.server.url(""), PHONE).await;
    let (email, password) = demo.account("security_engineer");
    sign_in_with_mfa(&b, email, password).await;
    b.goto("/tuning").await;
    b.find("main h1").await;
    assert!(
        b.page_width().await <= inner,
        "tuning is {} px wide",
        b.page_width().await
    );
    b.keep("tuning-390").await;
    no_serious_axe(&b, "/tuning").await;
    b.close().await;
    demo.stop().await;
}

/// The admins' controls through the pages: the tenant admin (MFA session)
/// turns a write scope on behind a confirmation that says what will
/// happen, and off again; engages the kill switch (banner on every page)
/// and releases it; the platform admin creates a tenant (a refused name
/// shows next to the field) and sees only the platform's pages.
#[tokio::test]
async fn admins_use_their_controls() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("tenant_admin");
    sign_in_with_mfa(&b, email, password).await;
    let nav = b.find("nav.top").await.text().await.unwrap();
    assert!(
        nav.contains("Integrations") && nav.contains("Kill switch"),
        "{nav}"
    );
    assert!(!nav.contains("Cases"), "the tenant admin reads no case: {nav}");

    // A write scope on, behind a confirmation naming the calls; then off.
    b.click("nav.top a[href='/integrations']").await;
    let on = b.find("form[action$='/scopes/issue:create'] button").await;
    assert_eq!(on.text().await.unwrap(), "Turn on");
    on.click().await.unwrap();
    let asked = b.client.get_alert_text().await.unwrap();
    assert!(
        asked.contains("issue:create") && asked.contains("POST"),
        "{asked}"
    );
    b.confirm().await;
    let off = b
        .find("form[action$='/scopes/issue:create'] button.secondary")
        .await;
    assert_eq!(off.text().await.unwrap(), "Turn off");
    b.keep("integrations-1280").await;
    no_serious_axe(&b, "/integrations").await;
    off.click().await.unwrap();
    let again = b
        .find("form[action$='/scopes/issue:create'] button:not(.secondary)")
        .await;
    assert_eq!(again.text().await.unwrap(), "Turn on");

    // Members: invite (the one-time link shown once), a bad address
    // refused beside the field, a role changed, a member removed
    // (confirmed), and the last tenant admin kept.
    b.click("nav.top a[href='/members']").await;
    b.fill("form[action='/members'] input[name=email]", "not an address")
        .await;
    b.js("document.querySelector(\"form[action='/members'] input[name=email]\").type = 'text'")
        .await;
    b.click("form[action='/members'] button").await;
    b.find("#invite-error").await;
    b.fill(
        "form[action='/members'] input[name=email]",
        "new.analyst@demo.vigil.test",
    )
    .await;
    b.click("form[action='/members'] button").await;
    let link = b.find("#invite-link").await.text().await.unwrap();
    assert!(link.contains("/setup/password/"), "{link}");
    no_serious_axe(&b, "/members").await;
    b.keep("members-1280").await;
    let row = |email: &'static str| format!("//tr[td[1][normalize-space()='{email}']]");
    let new_row = b
        .client
        .find(fantoccini::Locator::XPath(&row("new.analyst@demo.vigil.test")))
        .await
        .unwrap();
    new_row
        .find(fantoccini::Locator::Css("select[name=role]"))
        .await
        .unwrap()
        .select_by_value("analyst_edit")
        .await
        .unwrap();
    new_row
        .find(fantoccini::Locator::Css("button.secondary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("analyst_edit").await;
    let members = demo
        .get(&demo.token("tenant_admin").await, "/api/v1/members")
        .await;
    let new = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "new.analyst@demo.vigil.test")
        .cloned()
        .unwrap();
    assert_eq!(new["role"], "analyst_edit", "{members}");
    let remove = format!(
        "form[action='/members/{}/role'] button.danger",
        new["user_id"].as_str().unwrap()
    );
    b.click(&remove).await;
    b.confirm().await;
    b.wait_gone("new.analyst@demo.vigil.test").await;
    let me = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tenant_admin")
        .cloned()
        .unwrap();
    b.click(&format!(
        "form[action='/members/{}/role'] button.danger",
        me["user_id"].as_str().unwrap()
    ))
    .await;
    b.confirm().await;
    b.wait_text("this is the tenant's last tenant admin").await;

    // The kill switch: engaged (confirmed), a banner everywhere, released.
    b.click("nav.top a[href='/kill-switch']").await;
    b.click("form[action='/kill-switch'] button.danger").await;
    b.confirm().await;
    b.find("#kill-banner").await;
    b.goto("/integrations").await;
    assert!(
        b.find("#kill-banner")
            .await
            .text()
            .await
            .unwrap()
            .contains("Kill switch engaged")
    );
    b.goto("/kill-switch").await;
    b.keep("kill-switch-engaged-1280").await;
    no_serious_axe(&b, "/kill-switch").await;
    b.click("form[action='/kill-switch'] button").await;
    b.confirm().await;
    b.find("form[action='/kill-switch'] button.danger").await;
    assert!(b.all("#kill-banner").await.is_empty(), "the banner is gone");
    let token = demo.token("analyst_read").await;
    let k = demo.get(&token, "/api/v1/kill-switch").await;
    assert_eq!(k["engaged"], false, "{k}");

    // The audit log: what was just done, with its place in the chain and
    // its request; the chain verified against the installation's key.
    b.click("nav.top a[href='/audit']").await;
    let log = b.find("#audit-events").await.text().await.unwrap();
    for action in ["kill_switch.engage", "kill_switch.release", "membership.revoke"] {
        assert!(log.contains(action), "{action}: {log}");
    }
    b.click("form[action='/audit/verify'] button").await;
    let verdict = b.find("#verify-result").await.text().await.unwrap();
    assert!(verdict.starts_with("The chain verifies"), "{verdict}");
    assert!(!verdict.contains("no key"), "{verdict}");
    b.find("form[action='/api/v1/audit/export'] select[name=format]")
        .await;
    // Retention: a window out of bounds refused beside the form (the
    // browser's own min taken off, as a script could), then saved.
    let field = "form[action='/audit/retention'] input[name=telemetry_days]";
    b.js(&format!(
        "const f = document.querySelector(\"{field}\"); f.removeAttribute('min'); f.value = '3'"
    ))
    .await;
    b.click("form[action='/audit/retention'] button").await;
    let refused = b.find("#retention-result").await.text().await.unwrap();
    assert!(refused.contains("between 7 and 365"), "{refused}");
    b.fill(field, "60").await;
    b.click("form[action='/audit/retention'] button").await;
    b.wait_text("Saved. The next retention run").await;
    let r = demo
        .get(&demo.token("tenant_admin").await, "/api/v1/settings/retention")
        .await;
    assert_eq!(r["windows"]["telemetry_days"], 60, "{r}");
    // An erasure request: everything mentioning the user m.rossi, confirmed.
    b.js("document.querySelector(\"form[action='/audit/purge'] select[name=kind]\").value = 'user'")
        .await;
    b.fill("form[action='/audit/purge'] input[name=value]", "M.Rossi")
        .await;
    b.click("form[action='/audit/purge'] button").await;
    b.confirm().await;
    let erased = b.find("#purge-result").await.text().await.unwrap();
    assert!(
        erased.starts_with("Erased: ") && !erased.starts_with("Erased: 0 alerts"),
        "{erased}"
    );
    let log = b.find("#audit-events").await.text().await.unwrap();
    assert!(log.contains("data.purge") && !log.contains("m.rossi"), "{log}");
    b.keep("audit-1280").await;
    no_serious_axe(&b, "/audit").await;
    b.close().await;

    // The platform admin: tenants, nothing of a tenant's content.
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("platform_admin");
    sign_in_with_mfa(&b, email, password).await;
    let nav = b.find("nav.top").await.text().await.unwrap();
    assert_eq!(nav.split_whitespace().collect::<Vec<_>>(), ["Tenants"], "{nav}");
    b.click("nav.top a[href='/tenants']").await;
    b.wait_text("Demo SOC").await;
    b.fill("form[action='/tenants'] input[name=name]", "   ").await;
    b.click("form[action='/tenants'] button").await;
    b.find("#tenant-error").await;
    b.fill("form[action='/tenants'] input[name=name]", "Second SOC")
        .await;
    b.click("form[action='/tenants'] button").await;
    b.wait_text("Second SOC").await;
    // Its deletion scheduled (confirmed), shown with its due time, cancelled.
    b.click("button[aria-label='Delete Second SOC']").await;
    b.confirm().await;
    b.find(".deletion-due").await;
    b.keep("tenants-1280").await;
    no_serious_axe(&b, "/tenants").await;
    b.click("button[aria-label='Cancel deletion of Second SOC']")
        .await;
    b.wait_gone("Cancel deletion").await;
    assert!(b.all(".deletion-due").await.is_empty());
    no_serious_axe(&b, "/tenants").await;
    b.goto("/cases").await;
    b.wait_text("Not allowed").await;
    b.close().await;
    demo.stop().await;
}

/// An analyst works the queue: assigns a case to themself by keyboard
/// (j, then a), comments on it, hands it back to nobody, merges two cases
/// from the queue and splits an alert out again; a read-only analyst sees
/// the case's comments but no control.
#[tokio::test]
async fn an_analyst_assigns_comments_merges_and_splits() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("analyst_edit");
    b.sign_in(email, password).await;
    b.goto("/cases").await;
    b.find("table.queue tbody tr").await;
    let first_title = b.find("table.queue tbody tr a").await.text().await.unwrap();
    // j selects the first row, a assigns it to me: the queue of my cases.
    b.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j'}));")
        .await;
    b.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'a'}));")
        .await;
    b.wait_path("assignee=me").await;
    let count = b.find("#queue-count").await.text().await.unwrap();
    assert!(count.starts_with("1 case(s)"), "{count}");
    let row = b.find("table.queue tbody tr").await.text().await.unwrap();
    assert!(row.contains(&first_title) && row.contains("me"), "{row}");
    no_serious_axe(&b, "the queue with a selection").await;
    // This view saved under a name: a link back to it from any queue page.
    b.fill("#view-name", "Mine").await;
    b.click("form[action='/cases/views'] button").await;
    b.goto("/cases?severity=low").await;
    b.click(".views a").await;
    b.wait_path("assignee=me").await;

    // The case says who works it; a comment keeps its line breaks.
    b.click("table.queue tbody tr a").await;
    let text = b.wait_text("(you)").await;
    assert!(text.contains(&format!("Assigned to {email}")), "{text}");
    b.fill(
        "#comment-body",
        "Checked the proxy logs.\nNothing else on this host.",
    )
    .await;
    b.click("#comments form button").await;
    b.wait_text("Nothing else on this host.").await;
    let comment = b.find("ol.comments li").await.text().await.unwrap();
    assert!(comment.contains(email), "the author by e-mail: {comment}");
    assert!(
        comment.contains("Checked the proxy logs.\nNothing else on this host."),
        "{comment:?}"
    );
    let case_path = b.path().await;
    let case_path = case_path.split('#').next().unwrap().to_owned();
    b.keep("case-work-1280").await;
    no_serious_axe(&b, "the case with a comment").await;
    // Handed back to nobody.
    b.js("document.querySelector('#work select[name=user]').value = '';")
        .await;
    b.click("#assign-to").await;
    b.wait_text("Nobody is working this case.").await;

    // Merge two cases from the queue: the one opened first survives and
    // holds the other's alerts.
    // (Two of the cases that alerts opened: the demo also has cases opened
    // by hand, with no alert.)
    b.goto("/cases?sort=oldest").await;
    let mut ids = Vec::new();
    for row in b.all("table.queue tbody tr").await {
        let alerts: u64 = row
            .find(fantoccini::Locator::Css("td:nth-child(5)"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        if alerts == 0 {
            continue;
        }
        let x = row
            .find(fantoccini::Locator::Css("input[name=case]"))
            .await
            .unwrap();
        ids.push(x.attr("value").await.unwrap().unwrap());
        x.click().await.unwrap();
        if ids.len() == 2 {
            break;
        }
    }
    assert_eq!(ids.len(), 2, "two cases with alerts to merge");
    b.click("#bulk button[value=merge]").await;
    b.confirm().await;
    b.wait_text("merged in by").await;
    let survivor = b.path().await;
    assert!(
        ids.iter().any(|id| survivor.starts_with(&format!("/cases/{id}"))),
        "{survivor} is one of {ids:?}"
    );
    // Split one alert out again, into a new case with a title.
    let alerts = b.all("#alerts input[name=alert]").await;
    assert!(alerts.len() >= 2, "the survivor holds both cases' alerts");
    alerts[0].click().await.unwrap();
    b.fill("#alerts input[name=title]", "Split out by the analyst")
        .await;
    b.click("#alerts form button").await;
    b.confirm().await;
    b.wait_text("Split out by the analyst").await;
    assert_ne!(b.path().await, survivor);
    b.close().await;

    // A read-only analyst reads the comment and has no control.
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("analyst_read");
    b.sign_in(email, password).await;
    b.goto(&case_path).await;
    b.wait_text("Nothing else on this host.").await;
    assert!(b.all("#comments form, #work form").await.is_empty());
    assert!(b.all("table.queue input[name=case]").await.is_empty());
    b.goto("/cases").await;
    b.find("table.queue tbody tr").await;
    assert!(
        b.all("#bulk, table.queue input[name=case]").await.is_empty(),
        "no selection for a reader"
    );
    b.close().await;
    demo.stop().await;
}

/// The tenant admin's settings page: an API token issued (shown once,
/// then usable), revoked (confirmed; refused from its next request);
/// session limits refused out of bounds beside the form, then saved; the
/// approvals a gate kind needs raised to two.
#[tokio::test]
async fn a_tenant_admin_manages_tokens_sessions_and_quorum() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("tenant_admin");
    sign_in_with_mfa(&b, email, password).await;
    b.click("nav.top a[href='/settings']").await;
    b.wait_text("API tokens").await;

    // A token, shown once, works for its role.
    b.fill(
        "form[action='/settings/tokens'] input[name=name]",
        "SIEM forwarder",
    )
    .await;
    b.find("form[action='/settings/tokens'] select[name=role]")
        .await
        .select_by_value("analyst_read")
        .await
        .unwrap();
    b.click("form[action='/settings/tokens'] button").await;
    let token = b.find("#new-token").await.text().await.unwrap();
    let cases = |t: String| {
        let url = demo.server.url("/api/v1/cases");
        async move {
            vigil_e2e::http()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(cases(token.clone()).await, StatusCode::OK);
    b.keep("settings-1280").await;
    no_serious_axe(&b, "/settings").await;
    // Revoked: refused from its next request.
    b.goto("/settings").await;
    assert!(b.all("#new-token").await.is_empty(), "shown only once");
    b.click("button.link:has(span)").await;
    b.confirm().await;
    b.wait_text("revoked 20").await;
    assert_eq!(cases(token).await, StatusCode::UNAUTHORIZED);

    // Session limits: out of bounds refused beside the form, then saved.
    let idle = "form[action='/settings/sessions'] input[name=idle_minutes]";
    b.js(&format!(
        "const f = document.querySelector(\"{idle}\"); f.removeAttribute('min'); f.value = '2'"
    ))
    .await;
    b.click("form[action='/settings/sessions'] button").await;
    let err = b.find("#sessions .error").await.text().await.unwrap();
    assert!(err.contains("5 minutes"), "{err}");
    b.fill(idle, "45").await;
    b.click("form[action='/settings/sessions'] button").await;
    b.wait_text("This tenant has its own limits.").await;
    let admin_token = demo.token("tenant_admin").await;
    let limits = demo.get(&admin_token, "/api/v1/settings/sessions").await;
    assert_eq!(limits["idle_minutes"], 45, "{limits}");

    // Two approvers for a ticket write.
    b.fill("#quorum-ticket_write", "2").await;
    b.click("form[action='/settings/quorum']:has(#quorum-ticket_write) button")
        .await;
    b.find("#quorum-ticket_write[value='2']").await;
    let q = demo.get(&admin_token, "/api/v1/settings/gate-quorum").await;
    assert_eq!(q["ticket_write"], 2, "{q}");
    b.js("const f = document.querySelector('#quorum-close_case'); f.removeAttribute('max'); f.value = '9'")
        .await;
    b.click("form[action='/settings/quorum']:has(#quorum-close_case) button")
        .await;
    let err = b.find("#quorum .error").await.text().await.unwrap();
    assert!(err.contains("1 to 5"), "{err}");
    no_serious_axe(&b, "/settings with a refusal").await;
    b.close().await;
    demo.stop().await;
}

/// The tenant admin adds an OpenID Connect provider from the single
/// sign-on page: an issuer that does not answer is refused beside the form
/// (what was typed kept), the real one (npm oidc-provider) is added and
/// tested; a person then signs in through it from the login page's single
/// sign-on button, gets the role its group maps to, and the provider is
/// turned off and deleted.
#[tokio::test]
async fn a_tenant_admin_adds_an_identity_provider_and_a_person_signs_in_through_it() {
    use crate::sso::{SECRET, free_port, start_idp};
    let demo = Demo::start().await;
    let keys = tempfile::tempdir().unwrap();
    let port = free_port();
    let idp = start_idp(port, keys.path(), "a", "http://127.0.0.1:1/unused").await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("tenant_admin");
    sign_in_with_mfa(&b, email, password).await;
    b.click("nav.top a[href='/single-sign-on']").await;
    b.wait_text("No identity provider yet").await;

    let add = |issuer: String| {
        let b = &b;
        async move {
            b.fill("#new-oidc input[name=name]", "Corp IdP").await;
            b.fill("#new-oidc input[name=issuer]", &issuer).await;
            b.fill("#new-oidc input[name=client_id]", "vigil").await;
            b.fill("#new-oidc input[name=client_secret]", SECRET).await;
            b.fill("#new-oidc textarea[name=role_map]", "soc = analyst_edit")
                .await;
            b.fill("#new-oidc input[name=domains]", "example.com").await;
            b.click("#new-oidc button").await;
        }
    };
    // An issuer that does not answer: refused now, not at the first sign-in.
    add(format!("http://127.0.0.1:{}/", free_port())).await;
    let err = b.find("#oidc-error").await.text().await.unwrap();
    assert!(err.contains("issuer"), "{err}");
    let kept = b
        .find("#new-oidc input[name=name]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("Corp IdP"), "what was typed stays");
    assert_eq!(
        b.find("#new-oidc input[name=client_secret]")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(""),
        "never the secret"
    );
    no_serious_axe(&b, "/single-sign-on with a refusal").await;
    // SAML metadata that does not parse: refused beside its own form.
    b.fill("#new-saml input[name=name]", "Corp SAML").await;
    b.fill("#new-saml textarea[name=idp_metadata]", "<EntityDescriptor")
        .await;
    b.click("#new-saml button").await;
    let err = b.find("#saml-error").await.text().await.unwrap();
    assert!(err.contains("metadata"), "{err}");
    assert!(b.all("#oidc-error, section.provider").await.is_empty());
    // The real issuer.
    add(idp.issuer.clone()).await;
    let card = b.find("section.provider").await;
    let text = card.text().await.unwrap();
    assert!(
        text.contains("Corp IdP") && text.contains("soc → analyst_edit"),
        "{text}"
    );
    let redirect = b
        .client
        .find(fantoccini::Locator::XPath(
            "//dt[normalize-space()='Redirect URI']/following-sibling::dd[1]/code",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(redirect.ends_with("/callback"), "{redirect}");
    // The IdP learns the redirect URI (as its admin would register it).
    drop(idp);
    let idp = start_idp(port, keys.path(), "a", &redirect).await;
    b.click("section.provider form[action$='/test'] button").await;
    let verdict = b.find("#test-result").await.text().await.unwrap();
    assert!(verdict.starts_with("The issuer answers"), "{verdict}");
    b.keep("sso-1280").await;
    no_serious_axe(&b, "/single-sign-on").await;

    // A person signs in from the login page's single sign-on button.
    let person = single_sign_on_from_the_login_page(&demo, "alice@example.com").await;
    let deadline = tokio::time::Instant::now() + vigil_e2e::PATIENCE;
    let interaction = loop {
        let u = person.client.current_url().await.unwrap();
        if u.as_str().starts_with(&idp.issuer) && u.path().starts_with("/interaction/") {
            break u;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the IdP: {u}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // (The test IdP signs in whoever the query names.)
    person
        .client
        .goto(&format!("{interaction}?user=alice&amr=pwd"))
        .await
        .unwrap();
    let home = person.wait_text("Sign out").await;
    assert!(home.contains("alice@example.com"), "{home}");
    let nav = person.find("nav.top").await.text().await.unwrap();
    assert!(nav.contains("Cases"), "soc maps to analyst_edit: {nav}");
    person.close().await;

    // Turned off (confirmed), then deleted (confirmed).
    b.goto("/single-sign-on").await;
    b.click("section.provider form[action$='/enabled'] button").await;
    b.confirm().await;
    b.wait_text("(oidc, off)").await;
    b.click("section.provider form[action$='/delete'] button").await;
    b.confirm().await;
    b.wait_text("No identity provider yet").await;
    b.close().await;
    drop(idp);
    demo.stop().await;
}

/// The security engineer tunes the tenant through the pages: correlation
/// (a bad number refused beside the form, an ignore line saved), the
/// assessment's thresholds and benign detections, an indicator import
/// (a bad row named, what was pasted kept; then imported), and an
/// integration's credential rotated (new version and fingerprint) and
/// revoked (confirmed).
#[tokio::test]
async fn a_security_engineer_tunes_correlation_assessment_indicators_and_credentials() {
    let demo = Demo::start().await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("security_engineer");
    sign_in_with_mfa(&b, email, password).await;
    b.click("nav.top a[href='/tuning']").await;
    b.wait_text("Correlation").await;
    let token = demo.token("security_engineer").await;

    // Correlation: a bad number is refused, naming the setting.
    b.fill("#correlation input[name='/window_hours']", "a day").await;
    b.click("#correlation button").await;
    let err = b.find("#correlation-result.error").await.text().await.unwrap();
    assert!(err.contains("window hours"), "{err}");
    b.fill("#correlation textarea[name='/ignore']", "ip 10.9.9.9")
        .await;
    b.click("#correlation button").await;
    b.find("#correlation-result.notice").await;
    let c = demo.get(&token, "/api/v1/settings/correlation").await;
    assert_eq!(c["ignore"], json!([{"kind": "ip", "value": "10.9.9.9"}]), "{c}");
    no_serious_axe(&b, "/tuning").await;

    // Assessment: a threshold and a benign detection.
    b.fill("#assessment input[name='/ticket_at']", "0.7").await;
    b.fill(
        "#assessment textarea[name='/benign_detections']",
        "eicar\nbackup agent beacon",
    )
    .await;
    b.click("#assessment button").await;
    b.find("#assessment-result.notice").await;
    let a = demo.get(&token, "/api/v1/settings/assessment").await;
    assert_eq!(a["ticket_at"], 0.7, "{a}");
    assert_eq!(
        a["benign_detections"],
        json!(["backup agent beacon", "eicar"]),
        "sorted: {a}"
    );

    // Indicators: all or nothing, the bad row named, the text kept.
    let bad = "kind,value\nip,203.0.113.9\nip,not-an-address";
    b.fill("#iocs textarea[name=content]", bad).await;
    b.click("#iocs button").await;
    let err = b.find("#iocs-result.error").await.text().await.unwrap();
    assert!(err.contains('3'), "the third line is named: {err}");
    let kept = b
        .find("#iocs textarea[name=content]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(bad));
    b.fill(
        "#iocs textarea[name=content]",
        "kind,value\nip,203.0.113.9\ndomain,evil.example",
    )
    .await;
    b.click("#iocs button").await;
    let ok = b.find("#iocs-result.notice").await.text().await.unwrap();
    assert!(ok.starts_with("Imported: 2 added"), "{ok}");
    b.keep("tuning-1280").await;
    no_serious_axe(&b, "/tuning after an import").await;

    // A credential rotated, then revoked.
    b.click("nav.top a[href='/integrations']").await;
    let card = "section.integration:has(h2:first-child)";
    let before = b.find(card).await.text().await.unwrap();
    let version = |t: &str| {
        t.split("Credential: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    let v0 = version(&before);
    b.fill(&format!("{card} input[name=secret]"), "rotated-secret-value")
        .await;
    b.click(&format!("{card} form[action$='/credential'] button"))
        .await;
    b.confirm().await;
    let deadline = tokio::time::Instant::now() + vigil_e2e::PATIENCE;
    loop {
        let now = b.find(card).await.text().await.unwrap_or_default();
        if now.contains("Credential: ") && version(&now) != v0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {v0}: {now}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    b.click(&format!("{card} form[action$='/credential/revoke'] button"))
        .await;
    b.confirm().await;
    let deadline = tokio::time::Instant::now() + vigil_e2e::PATIENCE;
    while !b
        .find(card)
        .await
        .text()
        .await
        .unwrap_or_default()
        .contains("Credential: none")
    {
        assert!(tokio::time::Instant::now() < deadline, "never revoked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    no_serious_axe(&b, "/integrations with credential controls").await;
    b.close().await;
    demo.stop().await;
}

/// SAML 2.0 from the login page's button, in Chromium: the tenant admin
/// adds a provider from the metadata of a real IdP (SimpleSAMLphp), the IdP
/// is told the ACS URL and SP entity id the page shows, and a person signs
/// in through the IdP's own form and its self-posting page, getting the role
/// their group maps to.
#[tokio::test]
async fn a_person_signs_in_through_saml_from_the_login_page() {
    use crate::saml::{cert, start_idp};
    use crate::sso::free_port;
    let demo = Demo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (certs, state) = (dir.path().join("certs"), dir.path().join("state"));
    for d in [&certs, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    cert(&certs, "idp");
    let port = free_port();
    let other = "urn:vigil-test:other-sp";
    let first = start_idp(
        port,
        &certs,
        &state,
        "urn:placeholder",
        other,
        "http://127.0.0.1:9/",
    )
    .await;
    let b = Browser::start(&demo.server.url(""), DESKTOP).await;
    let (email, password) = demo.account("tenant_admin");
    sign_in_with_mfa(&b, email, password).await;
    b.goto("/single-sign-on").await;
    b.fill("#new-saml input[name=name]", "Corp SAML").await;
    // Metadata is pasted, not typed key by key.
    b.client
        .execute(
            "document.querySelector('#new-saml textarea[name=idp_metadata]').value = arguments[0]",
            vec![json!(first.metadata)],
        )
        .await
        .unwrap();
    b.fill("#new-saml textarea[name=role_map]", "soc = analyst_edit")
        .await;
    b.fill("#new-saml input[name=domains]", "example.com").await;
    // The corporate IdP's mail attribute is verified (else the account
    // gets a placeholder address, never the unverified one).
    b.click("#new-saml input[name=email_authoritative]").await;
    b.click("#new-saml button").await;
    let text = b.find("section.provider").await.text().await.unwrap();
    assert!(
        text.contains("Corp SAML") && text.contains("soc → analyst_edit"),
        "{text}"
    );
    let told = |label: &'static str| {
        let b = &b;
        async move {
            b.client
                .find(fantoccini::Locator::XPath(&format!(
                    "//dt[normalize-space()='{label}']/following-sibling::dd[1]/code"
                )))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let (entity, acs) = (
        told("SP entity id (and metadata URL)").await,
        told("ACS URL (HTTP-POST)").await,
    );
    assert!(
        acs.ends_with("/acs") && acs.starts_with(&demo.server.url("")),
        "{acs}"
    );
    no_serious_axe(&b, "/single-sign-on with a SAML provider").await;
    b.close().await;
    // The IdP's admin registers Vigil as the page says.
    drop(first);
    let _idp = start_idp(port, &certs, &state, &entity, other, &acs).await;

    let person = single_sign_on_from_the_login_page(&demo, "alice@example.com").await;
    // SimpleSAMLphp's own sign-in form; its answer page posts itself to the ACS.
    person.fill("input[name=username]", "alice").await;
    person.fill("input[name=password]", "alice-pw").await;
    person.click("#submit_button").await;
    let home = person.wait_text("Sign out").await;
    assert!(home.contains("alice@example.com"), "{home}");
    let nav = person.find("nav.top").await.text().await.unwrap();
    assert!(nav.contains("Cases"), "soc maps to analyst_edit: {nav}");
    person.close().await;
    demo.stop().await;
}
