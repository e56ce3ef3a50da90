//! End-to-end: the real binary, real SQLite files, real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "e2e/contract.rs"]
mod contract;
#[path = "e2e/correlation.rs"]
mod correlation;
#[path = "e2e/ingest_queue.rs"]
mod ingest_queue;
#[path = "e2e/investigation.rs"]
mod investigation;
#[path = "e2e/keys.rs"]
mod keys;
#[path = "e2e/layout.rs"]
mod layout;
#[path = "e2e/nodes.rs"]
mod nodes;
#[path = "e2e/outbox.rs"]
mod outbox;
#[path = "e2e/pollers.rs"]
mod pollers;
#[path = "e2e/saml.rs"]
mod saml;
#[path = "e2e/sso.rs"]
mod sso;
#[path = "e2e/timeline.rs"]
mod timeline;
#[path = "e2e/tls.rs"]
mod tls;
#[path = "e2e/ui.rs"]
mod ui;
#[path = "e2e/wire.rs"]
mod wire;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;
use vigil_e2e::{Server, find_url, http, line_after, run, vigil};
use vigil_orchestrator::testkit::{TestDb, pg_admin_url, with_database};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A single line naming the problem, and a failing exit.
fn assert_one_line_error(f: &vigil_e2e::Finished, needle: &str) {
    assert!(!f.status.success(), "must fail: {f:?}");
    let lines: Vec<_> = f.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {:?}", f.stderr);
    assert!(lines[0].starts_with("vigil: error: "), "{lines:?}");
    assert!(
        lines[0].contains(needle),
        "{:?} should mention {needle:?}",
        lines[0]
    );
}

#[tokio::test]
async fn zero_config_serve_bootstrap_and_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("server starts");
    let data = cwd.path().join("vigil-data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("vigil.sqlite3")), 0o600);
    let key = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_eq!(key.trim().len(), 64);

    let c = http();
    let health = c.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = c.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    let home = c.get(server.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Setup is not finished"), "{home}");
    let api404 = c.get(server.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(api404.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api404.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    // First run: the bootstrap link creates the first platform admin, once.
    let link = find_url(&server.stdout(), "/setup/bootstrap/").expect("bootstrap link printed");
    let token = link.rsplit('/').next().unwrap().to_owned();
    let form = c.get(&link).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert_eq!(form.headers()["referrer-policy"], "no-referrer");
    let mismatch = c
        .post(&link)
        .form(&[
            ("email", "admin@soc.example"),
            ("password", "a long password!"),
            ("confirm", "another one!!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let weak = c
        .post(&link)
        .form(&[
            ("email", "admin@soc.example"),
            ("password", "short"),
            ("confirm", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.text().await.unwrap().contains("at least 12 characters"));
    let ok = c
        .post(&link)
        .form(&[
            ("email", "admin@soc.example"),
            ("password", "a long password!"),
            ("confirm", "a long password!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("admin@soc.example is now the platform admin")
    );
    let reuse = c.get(&link).send().await.unwrap();
    assert_eq!(reuse.status(), StatusCode::GONE);
    let forged = c
        .get(server.url("/setup/bootstrap/not-a-real-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::GONE);
    let home = c.get(server.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!home.contains("Setup is not finished"));

    let (status, stdout, stderr) = server.terminate().await;
    assert!(status.success(), "SIGTERM exits 0: {status:?}\n{stderr}");
    // Secrets never reach the console or the logs: not the master key, and
    // not the one-time token (the access log records route templates).
    assert!(!stdout.contains(key.trim()) && !stderr.contains(key.trim()));
    assert!(!stderr.contains(&token), "token leaked into logs:\n{stderr}");
    assert!(
        stderr.contains("/setup/bootstrap/{token}"),
        "access log records the route:\n{stderr}"
    );
    assert!(stderr.contains("vigil stopped"));

    // A restart on the same data dir keeps the key and needs no bootstrap.
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let again = Server::start(cmd).await.expect("restart");
    assert!(!again.stdout().contains("/setup/bootstrap/"));
    assert_eq!(std::fs::read_to_string(data.join("master.key")).unwrap(), key);
    assert!(again.terminate().await.0.success());
}

#[tokio::test]
async fn json_logs_and_env_configuration() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--log-format", "json"])
        .env("VIGIL_LISTEN", "127.0.0.1:0")
        .env("VIGIL_DATA_DIR", "state");
    let server = Server::start(cmd).await.expect("server starts");
    http().get(server.url("/healthz")).send().await.unwrap();
    assert!(cwd.path().join("state/vigil.sqlite3").exists());
    let (status, _, stderr) = server.terminate().await;
    assert!(status.success());
    let mut saw_access = false;
    for line in stderr.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        saw_access |= v["route"] == "/healthz" && v["status"] == 200;
    }
    assert!(saw_access, "{stderr}");
}

#[tokio::test]
async fn second_serve_on_same_data_dir_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let first = Server::start(cmd).await.expect("first starts");
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let second = Server::start(cmd).await.expect_err("second must not start");
    assert_one_line_error(&second, "is in use by another vigil process");
    // The first is unharmed.
    assert_eq!(
        http().get(first.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(first.terminate().await.0.success());
}

#[tokio::test]
async fn port_in_use_fails_before_creating_anything() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", &addr]);
    let f = run(cmd).await;
    assert_one_line_error(&f, &format!("cannot listen on {addr}: address already in use"));
    assert!(!cwd.path().join("vigil-data").exists(), "nothing half-created");
}

#[tokio::test]
async fn bad_configuration_is_one_clear_line() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("unknown.toml"),
        "listen = \"127.0.0.1:0\"\nlisten_port = 9\n",
    )
    .unwrap();
    std::fs::write(cwd.path().join("broken.toml"), "listen = [\n").unwrap();
    let cases = [
        (
            vec!["--config", "unknown.toml"],
            "invalid configuration in unknown.toml: unknown key `listen_port`",
        ),
        (
            vec!["--config", "broken.toml"],
            "invalid configuration in broken.toml",
        ),
        (
            vec!["--config", "missing.toml"],
            "cannot read config file missing.toml: no such file or directory",
        ),
        (
            vec!["--database-url", "mysql://x/y"],
            "unsupported database URL scheme `mysql:`",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = vigil(cwd.path());
        cmd.arg("serve").args(&args).args(["--listen", "127.0.0.1:0"]);
        assert_one_line_error(&run(cmd).await, needle);
        assert!(
            !cwd.path().join("vigil-data").exists(),
            "{args:?}: nothing half-created"
        );
    }
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("VIGIL_LOG_LEVEL", "[[[");
    assert_one_line_error(&run(cmd).await, "invalid log_level");
}

#[tokio::test]
async fn unreachable_database_leaves_nothing_behind() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "postgres://vigil:hunter2@127.0.0.1:1/vigil",
    ]);
    let f = run(cmd).await;
    assert_one_line_error(&f, "cannot open database postgres://vigil:***@127.0.0.1:1/vigil");
    assert!(!f.stderr.contains("hunter2"), "password must not be printed");
    assert!(!cwd.path().join("vigil-data").exists(), "nothing half-created");
}

#[tokio::test]
async fn data_dir_without_permission() {
    let cwd = tempfile::tempdir().unwrap();
    // Under a regular file: no one can create a directory there.
    std::fs::write(cwd.path().join("file"), "").unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "file/data"]);
    assert_one_line_error(&run(cmd).await, "cannot create data directory file/data");

    // A directory this user may not write to. As root, drop to `nobody`
    // (root ignores permission bits).
    let locked = cwd.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = locked.join("data");
    let is_root = run({
        let mut c = tokio::process::Command::new("id");
        c.arg("-u");
        c
    })
    .await
    .stdout
    .trim()
        == "0";
    let mut cmd = if is_root {
        let mut c = tokio::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(vigil_e2e::vigil_bin());
        c.current_dir(cwd.path());
        c
    } else {
        vigil(cwd.path())
    };
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&target);
    let f = run(cmd).await;
    assert_one_line_error(&f, "permission denied");
    assert!(!target.exists());
}

#[tokio::test]
async fn demo_seeds_a_tenant_and_one_account_per_role() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("demo starts");
    let out = server.stdout();
    assert!(out.contains("Demo tenant \"Demo SOC\""), "{out}");
    let mut first_passwords = Vec::new();
    for role in [
        "platform_admin",
        "tenant_admin",
        "security_engineer",
        "analyst_edit",
        "analyst_read",
        "executive",
    ] {
        let line = line_after(&out, role).unwrap_or_else(|| panic!("{role} account printed:\n{out}"));
        let fields: Vec<_> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 2, "{line}");
        assert!(fields[0].ends_with("@demo.vigil.test"));
        first_passwords.push(fields[1].to_owned());
    }
    assert!(
        !out.contains("/setup/bootstrap/"),
        "demo has a platform admin already"
    );
    // The demo tenant has sample cases, each with a gate waiting for a human.
    let tenant_id = out
        .split("Demo tenant \"Demo SOC\" (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_owned();
    let token_for = |role: &'static str| {
        let mut cmd = vigil(cwd.path());
        cmd.args(["admin", "create-token", "--tenant", &tenant_id, "--role", role]);
        async move { run(cmd).await.stdout.trim().to_owned() }
    };
    let token = token_for("analyst_read").await;
    let inbox: serde_json::Value = http()
        .get(server.url("/api/v1/gates?status=pending"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_people = |inbox: &serde_json::Value| {
        inbox["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|g| g["requested_by"] != "system:investigation")
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(by_people(&inbox), 3, "{inbox}");
    let alerts: serde_json::Value = http()
        .get(server.url("/api/v1/alerts?limit=500"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let corpus = vigil_orchestrator::pipeline::corpus::generate(
        vigil::demo::DEMO_CORPUS_SEED,
        1,
        vigil::demo::DEMO_CORPUS_INCIDENTS,
        chrono::DateTime::UNIX_EPOCH, // the count does not depend on the start
    )
    .len() as u64;
    assert_eq!(
        alerts["total"],
        4 + corpus,
        "sample alerts in all four formats, and the corpus slice: {alerts}"
    );
    // `vigil demo` investigates its cases by itself: rounds run on the
    // engine's worker, drafts appear, and Vigil proposes gates.
    let get = |path: &'static str| {
        let url = server.url(path);
        let token = token.clone();
        async move {
            http()
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let mut done = serde_json::Value::Null;
    for _ in 0..120 {
        done = get("/api/v1/steps?state=succeeded&limit=500").await;
        let proposes = done["items"]
            .as_array()
            .map(|a| a.iter().filter(|s| s["kind"] == "investigation.propose").count())
            .unwrap_or(0);
        if proposes > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let kinds: std::collections::BTreeSet<String> = done["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for k in vigil_orchestrator::pipeline::investigation::STEPS {
        assert!(kinds.contains(k), "{k} ran: {done}");
    }
    // Its collect steps read evidence from the demo's loopback CrowdStrike
    // and Graylog through their read scopes.
    let collected: u64 = done["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "investigation.collect")
        .filter_map(|s| s["output"]["evidence"].as_u64())
        .sum();
    assert!(collected > 0, "evidence collected: {done}");
    // A citation opens its alert: raw, placement, observables, case.
    let first = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let one: serde_json::Value = http()
        .get(server.url(&format!("/api/v1/alerts/{first}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], first.as_str(), "{one}");
    assert!(
        one["raw"].is_string() && one["case_id"].is_string() && one["placed_by"].is_string(),
        "{one}"
    );
    let unknown = http()
        .get(server.url(&format!("/api/v1/alerts/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let dead = get("/api/v1/steps?state=dead").await;
    assert_eq!(dead["total"], 0, "{dead}");
    let inbox = get("/api/v1/gates?status=pending&limit=500").await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["requested_by"] == "system:investigation"),
        "Vigil proposed a gate itself: {inbox}"
    );
    assert!(server.terminate().await.0.success());

    // Idempotent: a second start reuses the tenant, with fresh passwords.
    let mut cmd = vigil(cwd.path());
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("demo restarts");
    let out = server.stdout();
    let again = line_after(&out, "analyst_edit")
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert_ne!(again, first_passwords[3]);
    // The estate's integrations follow the simulators to this run's ports:
    // the same two, not new ones.
    let eng = token_for("security_engineer").await;
    let list: serde_json::Value = http()
        .get(server.url("/api/v1/integrations"))
        .bearer_auth(&eng)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for name in [vigil::demo::DEMO_FALCON, vigil::demo::DEMO_GRAYLOG] {
        let mine: Vec<&serde_json::Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["name"] == name)
            .collect();
        assert_eq!(mine.len(), 1, "{name}: {list}");
        // Its address is this run's simulator (it answers: 401 without a credential).
        let base = mine[0]["config"]["base_url"].as_str().unwrap();
        let r = http()
            .get(format!("{base}/devices/queries/devices/v1"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{name} at {base}: {}", r.status());
    }
    assert!(server.terminate().await.0.success());
}

#[tokio::test]
async fn admin_commands_on_the_sqlite_store() {
    let cwd = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        let mut c = vigil(cwd.path());
        c.arg("admin").args(args);
        run(c)
    };
    let t = admin(&["create-tenant", "Acme SOC"]).await;
    assert!(t.status.success(), "{t:?}");
    let tenant = t.stdout.trim().to_owned();
    assert!(uuid_like(&tenant), "{tenant}");
    assert_one_line_error(&admin(&["create-tenant", "Acme SOC"]).await, "already exists");

    let u = admin(&[
        "create-user",
        "--tenant",
        &tenant,
        "--email",
        "Ann@Acme.example",
        "--role",
        "analyst_edit",
    ])
    .await;
    assert!(u.status.success(), "{u:?}");
    assert!(
        u.stdout
            .trim()
            .starts_with("http://127.0.0.1:8080/setup/password/"),
        "{}",
        u.stdout
    );

    let k = admin(&[
        "create-token",
        "--tenant",
        &tenant,
        "--role",
        "analyst_read",
        "--name",
        "siem",
    ])
    .await;
    assert!(k.status.success(), "{k:?}");
    assert!(k.stdout.trim().starts_with("vgl_"));

    assert_one_line_error(
        &admin(&[
            "create-user",
            "--tenant",
            &tenant,
            "--email",
            "b@acme.example",
            "--role",
            "root",
        ])
        .await,
        "unknown role `root`",
    );
    assert_one_line_error(
        &admin(&[
            "create-user",
            "--tenant",
            &tenant,
            "--email",
            "not-an-email",
            "--role",
            "executive",
        ])
        .await,
        "is not an e-mail address",
    );
    let ghost = "00000000-0000-7000-8000-000000000000";
    assert_one_line_error(
        &admin(&[
            "create-user",
            "--tenant",
            ghost,
            "--email",
            "c@acme.example",
            "--role",
            "executive",
        ])
        .await,
        "tenant not found",
    );
    assert_one_line_error(
        &admin(&["create-token", "--tenant", "nope", "--role", "executive"]).await,
        "tenant id `nope` is not a UUID",
    );

    // The link printed by the CLI works on the server over the same store.
    let link = u.stdout.trim().to_owned();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("serve");
    let path = &link[link.find("/setup/").unwrap()..];
    let c = http();
    let set = c
        .post(server.url(path))
        .form(&[
            ("password", "ann's long password"),
            ("confirm", "ann's long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(
        c.get(server.url(path)).send().await.unwrap().status(),
        StatusCode::GONE
    );
    assert!(server.terminate().await.0.success());
}

/// `vigil audit`: the signing key is made on first use beside the master
/// key; every chain head is signed; verify passes, then names a checkpoint
/// signed by another key and an event edited in the database.
#[tokio::test]
async fn audit_cli_signs_verifies_and_names_a_break() {
    use sea_orm::ConnectionTrait;
    let cwd = tempfile::tempdir().unwrap();
    let cli = |dir: &Path, args: &[&str]| {
        let mut c = vigil(dir);
        c.args(args);
        run(c)
    };
    let t = cli(cwd.path(), &["admin", "create-tenant", "Acme SOC"]).await;
    assert!(t.status.success(), "{t:?}");
    let tenant = t.stdout.trim().to_owned();
    for who in ["ann", "bob", "cy"] {
        let email = format!("{who}@acme.example");
        let u = cli(
            cwd.path(),
            &[
                "admin",
                "create-user",
                "--tenant",
                &tenant,
                "--email",
                &email,
                "--role",
                "analyst_edit",
            ],
        )
        .await;
        assert!(u.status.success(), "{u:?}");
    }
    let k = cli(cwd.path(), &["audit", "key"]).await;
    assert!(k.status.success(), "{k:?}");
    let public = k.stdout.trim().to_owned();
    assert!(
        public.len() == 64 && public.bytes().all(|b| b.is_ascii_hexdigit()),
        "{public}"
    );
    let key_file = cwd.path().join("vigil-data/audit-signing.key");
    assert_eq!(mode(&key_file), 0o600);
    assert!(
        !std::fs::read_to_string(&key_file).unwrap().contains(&public),
        "the file holds the private half"
    );

    let cp = cli(cwd.path(), &["audit", "checkpoint"]).await;
    assert!(cp.status.success(), "{cp:?}");
    assert_eq!(
        cp.stdout.trim(),
        "2 chain heads signed",
        "the platform's and the tenant's"
    );
    let v = cli(cwd.path(), &["audit", "verify"]).await;
    assert!(v.status.success(), "{v:?}");
    assert!(v.stdout.contains("platform: ok"), "{}", v.stdout);
    assert!(
        v.stdout.contains(&format!(
            "tenant:{tenant}: ok: 3 events (seq 1..3), 1 signed checkpoints"
        )),
        "{}",
        v.stdout
    );
    let v = cli(
        cwd.path(),
        &["audit", "verify", "--tenant", &tenant, "--key", &public],
    )
    .await;
    assert!(v.status.success(), "{v:?}");

    // Another installation's key did not sign these checkpoints.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = cli(elsewhere.path(), &["audit", "key"])
        .await
        .stdout
        .trim()
        .to_owned();
    let v = cli(
        cwd.path(),
        &["audit", "verify", "--tenant", &tenant, "--key", &other],
    )
    .await;
    assert_one_line_error(&v, "checkpoint forged");
    assert_one_line_error(
        &cli(cwd.path(), &["audit", "verify", "--key", "abc"]).await,
        "--key",
    );

    // Someone with the database file edits an event.
    let db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=rw",
        cwd.path().join("vigil-data/vigil.sqlite3").display()
    ))
    .await
    .unwrap();
    db.execute_unprepared("DROP TRIGGER audit_events_no_update")
        .await
        .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE audit_events SET actor = 'mallory' WHERE chain = 'tenant:{tenant}' AND seq = 2"
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let v = cli(cwd.path(), &["audit", "verify"]).await;
    assert!(
        v.stdout
            .contains(&format!("tenant:{tenant}: BROKEN at seq 2: edited")),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("platform: ok"), "{}", v.stdout);
    assert_one_line_error(&v, "audit chain broken");
}

/// `vigil admin export-tenant` on `extra` args' store: every tenant table
/// in the archive, counts and SHA-256 as the manifest says, nothing of
/// another tenant; the export is audited; an existing file is not
/// overwritten.
async fn export_tenant_archive(extra: &[&str]) {
    use sha2::Digest;
    let cwd = tempfile::tempdir().unwrap();
    let cli = |args: Vec<String>| {
        let mut c = vigil(cwd.path());
        c.args(args).args(extra);
        run(c)
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mine = cli(s(&["admin", "create-tenant", "Portable SOC"])).await;
    assert!(mine.status.success(), "{mine:?}");
    let mine = mine.stdout.trim().to_owned();
    let theirs = cli(s(&["admin", "create-tenant", "Other SOC"]))
        .await
        .stdout
        .trim()
        .to_owned();
    for (t, who) in [(&mine, "ann@portable.example"), (&theirs, "bob@other.example")] {
        let u = cli(s(&[
            "admin",
            "create-user",
            "--tenant",
            t,
            "--email",
            who,
            "--role",
            "analyst_edit",
        ]))
        .await;
        assert!(u.status.success(), "{u:?}");
    }
    let out = cwd.path().join("portable.tar");
    let out_s = out.display().to_string();
    let e = cli(s(&["admin", "export-tenant", "--tenant", &mine, "--out", &out_s])).await;
    assert!(e.status.success(), "{e:?}");
    assert!(e.stdout.contains("rows of"), "{}", e.stdout);
    let unpacked = cwd.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let x = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&out)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(x.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "vigil-tenant-export");
    assert_eq!(manifest["tenant_id"], mine);
    let tables = manifest["tables"].as_array().unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(names, vigil_migrations::TENANT_TABLES, "every tenant table");
    let mut all = String::new();
    for t in tables {
        let text = std::fs::read_to_string(unpacked.join(t["file"].as_str().unwrap())).unwrap();
        assert_eq!(text.lines().count() as u64, t["rows"].as_u64().unwrap(), "{t}");
        assert_eq!(
            hex::encode(sha2::Sha256::digest(text.as_bytes())),
            t["sha256"],
            "{t}"
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{t}: {e}: {line}"));
        }
        all.push_str(&text);
    }
    let members = tables.iter().find(|t| t["table"] == "memberships").unwrap();
    assert_eq!(members["rows"], 1);
    assert!(
        tables.iter().find(|t| t["table"] == "audit_events").unwrap()["rows"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(
        !all.contains(&theirs) && !all.contains("bob@other"),
        "nothing of the other tenant"
    );
    // Not overwritten.
    let again = cli(s(&["admin", "export-tenant", "--tenant", &mine, "--out", &out_s])).await;
    assert_one_line_error(&again, "cannot create");
    // Audited in the tenant's chain.
    let v = cli(s(&["audit", "verify", "--tenant", &mine])).await;
    assert!(v.status.success(), "{v:?}");
}

#[tokio::test]
async fn export_tenant_archive_sqlite() {
    export_tenant_archive(&[]).await;
}

#[tokio::test]
async fn export_tenant_archive_postgres() {
    let admin_url = pg_admin_url();
    let name = TestDb::create_pg_database(&admin_url).await;
    let url = with_database(&admin_url, &name);
    export_tenant_archive(&["--database-url", &url]).await;
    TestDb::drop_pg_database(&admin_url, &name);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn postgres_migrate_serve_and_admin() {
    let admin_url = pg_admin_url();
    let name = TestDb::create_pg_database(&admin_url).await;
    let url = with_database(&admin_url, &name);
    let cwd = tempfile::tempdir().unwrap();

    let mut m = vigil(cwd.path());
    m.args(["migrate", "--database-url", &url]);
    let f = run(m).await;
    assert!(f.status.success(), "{f:?}");
    assert_eq!(f.stdout.trim(), "migrations applied");

    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("VIGIL_DATABASE_URL", &url);
    let server = Server::start(cmd).await.expect("serve on postgres");
    let ready = http().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let home = http()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("PostgreSQL"));

    let mut c = vigil(cwd.path());
    c.args(["admin", "create-tenant", "Pg SOC", "--database-url", &url]);
    let t = run(c).await;
    assert!(t.status.success(), "{t:?}");
    let mut c = vigil(cwd.path());
    c.args([
        "admin",
        "create-token",
        "--tenant",
        t.stdout.trim(),
        "--role",
        "executive",
        "--database-url",
        &url,
    ]);
    let k = run(c).await;
    assert!(k.status.success() && k.stdout.starts_with("vgl_"), "{k:?}");
    assert!(server.terminate().await.0.success());
    TestDb::drop_pg_database(&admin_url, &name);
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("server starts");
    let link = find_url(&server.stdout(), "/setup/bootstrap/").unwrap();
    let path = &link[link.find("/setup/").unwrap()..];
    let addr = server.base.trim_start_matches("http://").to_owned();

    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The connection is live: one request served on it first.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A form submission whose body is still arriving when SIGTERM lands.
    // `Expect: 100-continue`: the server's "100 Continue" says the request
    // is in its hands (its handler reads the body) before the signal is
    // sent; without it, a loaded machine could deliver SIGTERM before the
    // server had read the headers, and an idle connection is closed.
    let body = "email=admin%40soc.example&password=a+long+password%21&confirm=a+long+password%21";
    let (first, rest) = body.split_at(20);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before 100 Continue");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    conn.write_all(first.as_bytes()).await.unwrap();
    vigil_e2e::kill(server.pid(), "TERM");
    // Wait for the condition (the server has begun shutting down), then finish.
    server.wait_for_stderr("shutdown requested").await;
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request completed: {response}"
    );
    assert!(response.contains("is now the platform admin"));
    let (status, _, stderr) = server.terminate().await;
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn readyz_reports_pending_migrations() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = vigil(cwd.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd).await.expect("server starts");
    assert_eq!(
        http().get(server.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // Simulate a database behind this binary's schema.
    let db_path = cwd.path().join("vigil-data/vigil.sqlite3");
    let db = sea_orm::Database::connect(format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&db, "DELETE FROM seaql_migrations")
        .await
        .unwrap();
    db.close().await.unwrap();
    let r = http().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_ready");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("m20261122_000001_foundation"),
        "{v}"
    );
    // Liveness is independent of readiness.
    assert_eq!(
        http().get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(server.terminate().await.0.success());
}

/// A worker killed with SIGKILL mid-step loses nothing: after its lease
/// expires (database clock) another process takes the step; with three
/// processes competing, every step completes, and none of the live workers
/// runs a step another one ran.
#[tokio::test]
async fn a_killed_worker_loses_nothing() {
    use std::collections::HashMap;
    use vigil_orchestrator::audit::Actor;
    use vigil_orchestrator::engine::steps;
    use vigil_orchestrator::{Store, StoreOptions, SystemClock, identity};

    let admin_url = pg_admin_url();
    let name = TestDb::create_pg_database(&admin_url).await;
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&StoreOptions::new(url.clone())).await.unwrap();
    let mut ids = Vec::new();
    for t in ["A", "B"] {
        let tx = store.begin_platform().await.unwrap();
        let tenant = identity::create_tenant(&tx, &SystemClock, &Actor::cli(), t)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let tx = store.begin_tenant(tenant.id).await.unwrap();
        for _ in 0..30 {
            ids.push(
                steps::enqueue(
                    &tx,
                    &SystemClock,
                    steps::NewStep::new("e2e.work", None, serde_json::json!({})),
                )
                .await
                .unwrap(),
            );
        }
        tx.commit().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("effects.log");
    let worker_bin = vigil_e2e::vigil_bin().with_file_name("step-worker");
    let spawn = |hold: bool| {
        let mut c = tokio::process::Command::new(&worker_bin);
        c.args(["--database-url", &url, "--out"])
            .arg(&out)
            .args(["--lease-secs", "2"])
            .kill_on_drop(true);
        c.stdout(std::process::Stdio::null());
        if hold {
            c.arg("--hold-first");
        }
        c.spawn().expect("spawn step-worker")
    };
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let deadline = std::time::Instant::now() + vigil_e2e::PATIENCE;

    // Worker A takes a step and hangs in it; then it is killed -9.
    let mut a = spawn(true);
    let a_pid = a.id().unwrap();
    while !read()
        .lines()
        .any(|l| l.starts_with("start ") && l.ends_with(&format!(" {a_pid}")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "worker A never started a step"
        );
        tick.tick().await;
    }
    vigil_e2e::kill(a_pid, "KILL");
    a.wait().await.unwrap();
    let held: String = read()
        .lines()
        .find(|l| l.ends_with(&format!(" {a_pid}")))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned();

    // Two (then three, counting the dead one) workers finish the job.
    let mut b = spawn(false);
    let mut c = spawn(false);
    let owner = sea_orm::Database::connect(url.clone()).await.unwrap();
    loop {
        let row = sea_orm::ConnectionTrait::query_one_raw(
            &owner,
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM steps WHERE state = 'succeeded'",
            ),
        )
        .await
        .unwrap()
        .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == ids.len() as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "steps did not all complete:\n{}",
            read()
        );
        tick.tick().await;
    }
    b.kill().await.unwrap();
    c.kill().await.unwrap();

    let mut done: HashMap<String, Vec<String>> = HashMap::new();
    for l in read().lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f[0] == "done" {
            done.entry(f[1].to_owned()).or_default().push(f[2].to_owned());
        }
    }
    if done.len() != ids.len() {
        let rows = sea_orm::ConnectionTrait::query_all_raw(
            &owner,
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT id::text AS id, attempts, output::text AS output, lease_owner FROM steps",
            ),
        )
        .await
        .unwrap();
        for r in rows {
            let id: String = r.try_get("", "id").unwrap();
            if !done.contains_key(&id) {
                let lines: Vec<_> = read()
                    .lines()
                    .filter(|l| l.contains(&id))
                    .map(str::to_owned)
                    .collect();
                eprintln!(
                    "missing {id}: attempts={:?} output={:?} lines={lines:?}",
                    r.try_get::<i32>("", "attempts"),
                    r.try_get::<Option<String>>("", "output")
                );
            }
        }
        eprintln!("held={held} a_pid={a_pid}");
    }
    assert_eq!(done.len(), ids.len(), "every step completed");
    assert!(
        done.values().all(|by| by.len() == 1),
        "a step completed twice: {done:?}"
    );
    assert_ne!(
        done[&held][0],
        a_pid.to_string(),
        "the held step was finished by another worker"
    );
    let workers: std::collections::HashSet<_> = done.values().map(|v| v[0].clone()).collect();
    assert_eq!(workers.len(), 2, "both surviving workers took part");
    let attempts = sea_orm::ConnectionTrait::query_one_raw(
        &owner,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT attempts FROM steps WHERE id = '{held}'"),
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .try_get::<i32>("", "attempts")
    .unwrap();
    assert_eq!(attempts, 2, "claimed by A, then again after its lease expired");
    drop(owner);
    store.close().await.unwrap();
    TestDb::drop_pg_database(&admin_url, &name);
}
