//! A real browser for the UI tests: Debian's Chromium, headless, driven by
//! its chromedriver over WebDriver (fantoccini). Never a downloaded
//! browser. Each [`Browser`] runs its own chromedriver on a free port and
//! one Chromium session; screenshots go to `target/e2e-artifacts/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::PATIENCE;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The widths every key screen is checked and kept at.
pub const DESKTOP: u32 = 1280;
pub const PHONE: u32 = 390;

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where screenshots are kept (a CI artifact).
pub fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-exe> → target/e2e-artifacts
    let target = exe
        .parent()
        .and_then(std::path::Path::parent)
        .and_then(std::path::Path::parent)
        .expect("target dir");
    let dir = target.join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

impl Browser {
    /// Chromium at `width` × 900, talking to the Vigil at `base`.
    pub async fn start(base: &str, width: u32) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} missing: install Debian's chromium and chromium-driver (./test.sh does)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},900"), "--lang=en-US"],
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let client = loop {
            // WebDriver on loopback: plain HTTP, no TLS stack.
            let http = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(http)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver at {url}: {e}"),
            }
        };
        Browser {
            client,
            driver,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    pub async fn path(&self) -> String {
        let u = self.client.current_url().await.expect("url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    /// Waits until an element matching `css` is on the page.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.base))
    }

    pub async fn all(&self, css: &str) -> Vec<fantoccini::elements::Element> {
        self.client.find_all(Locator::Css(css)).await.expect("find_all")
    }

    /// Waits until the page's text contains `needle`; returns the text.
    pub async fn wait_text(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page ({}) never showed {needle:?}:\n{text}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's address (path and query) contains `needle`.
    pub async fn wait_path(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.path().await.contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page stayed at {}, never {needle:?}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's text no longer contains `needle`.
    pub async fn wait_gone(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.text().await.contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page ({}) kept showing {needle:?}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the page's body.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(value).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Signs in through the login page; waits for the page after it.
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.goto("/login").await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", password).await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.wait_text("Sign out").await;
    }

    /// Accepts the page's confirmation dialog (hx-confirm).
    pub async fn confirm(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.client.accept_alert().await {
                Ok(()) => return,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("no confirmation dialog: {e}"),
            }
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("js {script}: {e}"))
    }

    /// How wide the page is laid out (wider than the window: it scrolls
    /// sideways).
    pub async fn page_width(&self) -> u64 {
        self.js("return document.documentElement.scrollWidth")
            .await
            .as_u64()
            .unwrap_or(0)
    }

    /// Keeps a screenshot as a test artifact.
    pub async fn keep(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(artifacts().join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// axe-core's serious and critical violations on the current page
    /// (axe from npm, `e2e/browser/node_modules`).
    pub async fn axe(&self) -> Vec<String> {
        let src = std::fs::read_to_string(axe_path())
            .unwrap_or_else(|e| panic!("{}: {e} (npm ci --prefix e2e/browser)", axe_path().display()));
        self.js(&format!("{src}\nreturn true;")).await;
        let out = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' — ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe.run");
        out.as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

fn axe_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js")
}
