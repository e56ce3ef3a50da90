//! A step worker process for crash tests: the real engine (`steps::run_once`
//! against real PostgreSQL, lease on the database clock) with one handler,
//! `e2e.work`, that appends `start <step>` and `done <step>` lines to a file.
//! With `--hold-first` the first step it takes hangs forever after `start`:
//! the process is then killed mid-step by the test.
//!
//! Usage: step-worker --database-url URL --out FILE [--lease-secs N] [--hold-first]

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use vigil_orchestrator::engine::steps::{self, StepContext, StepDone, StepFailure, StepHandler};
use vigil_orchestrator::{Store, StoreOptions, SystemClock};

struct Work {
    out: std::path::PathBuf,
    hold_first: AtomicBool,
}

impl Work {
    fn log(&self, line: String) {
        // One write(2) per line: O_APPEND keeps concurrent writers' lines whole.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .unwrap();
        f.write_all(format!("{line} {}\n", std::process::id()).as_bytes())
            .unwrap();
    }
}

#[async_trait::async_trait]
impl StepHandler for Work {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepDone, StepFailure> {
        self.log(format!("start {}", ctx.step_id));
        if self.hold_first.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        // Simulated work (so competing workers really overlap).
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        self.log(format!("done {}", ctx.step_id));
        Ok(StepDone {
            output: json!({"by": std::process::id()}),
            next: vec![],
        })
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let url = arg("--database-url").expect("--database-url");
    let out = arg("--out").expect("--out");
    let lease: i64 = arg("--lease-secs").map(|s| s.parse().unwrap()).unwrap_or(2);
    let work = Arc::new(Work {
        out: out.into(),
        hold_first: AtomicBool::new(args.iter().any(|a| a == "--hold-first")),
    });
    let store = Store::connect(&StoreOptions::new(url)).await.expect("connect");
    let registry = steps::Registry::default().with("e2e.work", work);
    let mut worker = steps::Worker::new(format!("pid-{}", std::process::id()));
    worker.lease = chrono::Duration::seconds(lease);
    worker.batch = 1; // one at a time, so a hold stops this worker entirely
    let mut idle = tokio::time::interval(std::time::Duration::from_millis(50));
    println!("worker ready");
    loop {
        let r = steps::run_once(&store, &SystemClock, &registry, &worker)
            .await
            .expect("run");
        if r.claimed() == 0 {
            idle.tick().await;
        }
    }
}
