//! The executive dashboard: cases opened (by severity) and closed per day,
//! MTTA and MTTR with their formulas, open gates by age, and what people
//! did with Vigil's proposals. Charts are SVG drawn here, on the server:
//! readable without JavaScript, each with its numbers as a table beside it.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use vigil_orchestrator::engine::metrics::{self, Dashboard};

use crate::web::AppState;
use crate::web::auth::TenantCtx;
use crate::web::error::page_error;

/// Days the dashboard covers.
const DAYS: i64 = 14;

const SEVERITY_COLOURS: [&str; 4] = ["#b42318", "#c4320a", "#b08800", "#57606a"];

/// One stacked bar chart: `bars[i]` is the stack of column `i` (one value
/// per series). Numbers and fixed labels only, so nothing needs escaping
/// but the labels, which are escaped.
fn stacked(title: &str, labels: &[String], series: &[(&str, &str)], bars: &[Vec<u64>]) -> String {
    let (w, h, left, bottom, top) = (640.0_f64, 200.0_f64, 28.0, 24.0, 8.0);
    let max = bars
        .iter()
        .map(|b| b.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = bars.len().max(1) as f64;
    let slot = (w - left) / n;
    let bar = (slot * 0.7).max(1.0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\" class=\"chart\" preserveAspectRatio=\"none\">",
        esc(title)
    );
    s.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{w}\" y2=\"{}\" class=\"axis\"/>",
        h - bottom,
        h - bottom
    ));
    s.push_str(&format!(
        "<text x=\"0\" y=\"{}\" class=\"tick\">{}</text><text x=\"0\" y=\"{}\" class=\"tick\">0</text>",
        top + 8.0,
        max as u64,
        h - bottom
    ));
    for (i, stack) in bars.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = h - bottom;
        for (j, v) in stack.iter().enumerate() {
            if *v == 0 {
                continue;
            }
            let bh = (*v as f64 / max) * (h - bottom - top);
            y -= bh;
            let (name, colour) = series.get(j).copied().unwrap_or(("", "#57606a"));
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{}: {v} {}</title></rect>",
                esc(labels.get(i).map_or("", String::as_str)),
                esc(name)
            ));
        }
        if i % 2 == 0
            && let Some(l) = labels.get(i)
        {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                h - 6.0,
                esc(l)
            ));
        }
    }
    s.push_str("</svg>");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn duration(m: Option<f64>) -> String {
    match m {
        None => "—".into(),
        Some(m) if m < 120.0 => format!("{m:.0} min"),
        Some(m) if m < 48.0 * 60.0 => format!("{:.1} h", m / 60.0),
        Some(m) => format!("{:.1} days", m / 1440.0),
    }
}

pub struct Row {
    day: String,
    opened: [u64; 4],
    closed: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    days: i64,
    opened_chart: String,
    closed_chart: String,
    rows: Vec<Row>,
    severities: [&'static str; 4],
    open_cases: u64,
    mtta: String,
    mtta_cases: usize,
    mttr: String,
    mttr_cases: usize,
    mtta_formula: &'static str,
    mttr_formula: &'static str,
    gates_by_age: Vec<(&'static str, u64)>,
    proposals: Vec<(&'static str, u64, String)>,
}

fn page(d: Dashboard) -> DashboardPage {
    let labels: Vec<String> = d.days.iter().map(|x| x.day.format("%m-%d").to_string()).collect();
    let sev_names = metrics::SEVERITIES.map(|s| s.as_str());
    let series: Vec<(&str, &str)> = sev_names.iter().copied().zip(SEVERITY_COLOURS).collect();
    let opened: Vec<Vec<u64>> = d.days.iter().map(|x| x.opened.to_vec()).collect();
    let closed: Vec<Vec<u64>> = d.days.iter().map(|x| vec![x.closed]).collect();
    let total: u64 = d.proposals.iter().sum();
    let share = |n: u64| {
        if total == 0 {
            "—".to_owned()
        } else {
            format!("{:.0}%", 100.0 * n as f64 / total as f64)
        }
    };
    DashboardPage {
        days: DAYS,
        opened_chart: stacked("Cases opened per day, by severity", &labels, &series, &opened),
        closed_chart: stacked("Cases closed per day", &labels, &[("closed", "#0b5cad")], &closed),
        rows: d
            .days
            .iter()
            .map(|x| Row {
                day: x.day.format("%Y-%m-%d").to_string(),
                opened: x.opened,
                closed: x.closed,
            })
            .collect(),
        severities: sev_names,
        open_cases: d.open_cases,
        mtta: duration(d.mtta_minutes),
        mtta_cases: d.mtta_cases,
        mttr: duration(d.mttr_minutes),
        mttr_cases: d.mttr_cases,
        mtta_formula: metrics::MTTA_FORMULA,
        mttr_formula: metrics::MTTR_FORMULA,
        gates_by_age: vec![
            ("under 1 hour", d.open_gates_by_age[0]),
            ("1 to 4 hours", d.open_gates_by_age[1]),
            ("4 to 24 hours", d.open_gates_by_age[2]),
            ("over 24 hours", d.open_gates_by_age[3]),
        ],
        proposals: vec![
            ("approved", d.proposals[0], share(d.proposals[0])),
            ("dismissed", d.proposals[1], share(d.proposals[1])),
            ("waiting", d.proposals[2], share(d.proposals[2])),
        ],
    }
}

pub async fn dashboard(State(s): State<AppState>, Extension(ctx): Extension<TenantCtx>) -> Response {
    let result = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let d = metrics::dashboard(&tx, s.clock.now(), DAYS).await?;
        tx.commit().await?;
        Ok::<_, vigil_orchestrator::Error>(d)
    }
    .await;
    match result {
        Ok(d) => page(d).into_response(),
        Err(e) => page_error(e),
    }
}
