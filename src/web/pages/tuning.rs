//! The security engineer's tuning page: correlation (windows, weights per
//! entity kind and role, the ignore list, how prevalence lowers a weight),
//! the assessment (signal weights, thresholds, known-benign detections)
//! and indicator import (CSV or STIX 2.1). The settings forms are drawn
//! from the settings' own JSON (one field per number, one line per list
//! item), read back into the core's types and saved by the same functions
//! as the API, which validate and audit them.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use vigil_orchestrator::Error;
use vigil_orchestrator::pipeline::{assess, correlate, iocs};

use crate::web::AppState;
use crate::web::auth::{Principal, TenantCtx};
use crate::web::error::page_error;

/// One field of a settings form.
pub struct Field {
    /// The JSON pointer of the value it edits.
    name: String,
    label: String,
    /// A number (else lines of text).
    number: bool,
    value: String,
    hint: &'static str,
}

/// How a settings document is edited: which objects are open maps (a
/// line `key = number` each) and which arrays hold objects (a line of
/// their fields, in this order, each).
struct Shape {
    maps: &'static [&'static str],
    objects: &'static [(&'static str, &'static [&'static str])],
}

const CORRELATION: Shape = Shape {
    maps: &["/weights"],
    objects: &[("/ignore", &["kind", "value"])],
};
const ASSESSMENT: Shape = Shape {
    maps: &[],
    objects: &[],
};

fn label(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .replace('/', " · ")
        .replace('_', " ")
}

fn number_text(v: &Value) -> String {
    match v.as_f64() {
        // f32 settings read back as 0.30000001192…: shown as typed.
        Some(f) if !v.is_i64() && !v.is_u64() => format!("{}", (f * 1e6).round() / 1e6),
        _ => v.to_string(),
    }
}

/// The form fields of `v` (an object), depth first.
fn fields(v: &Value, at: &str, shape: &Shape, out: &mut Vec<Field>) {
    match v {
        Value::Object(m) if shape.maps.contains(&at) => out.push(Field {
            name: at.to_owned(),
            label: label(at),
            number: false,
            value: m
                .iter()
                .map(|(k, x)| format!("{k} = {}\n", number_text(x)))
                .collect(),
            hint: "one “key = weight” per line",
        }),
        Value::Object(m) => {
            for (k, x) in m {
                fields(x, &format!("{at}/{k}"), shape, out);
            }
        }
        Value::Array(items) => {
            let keys = shape.objects.iter().find(|(p, _)| *p == at).map(|(_, k)| *k);
            let value = items
                .iter()
                .map(|x| match keys {
                    Some(keys) => {
                        let parts: Vec<&str> = keys.iter().map(|k| x[*k].as_str().unwrap_or("")).collect();
                        format!("{}\n", parts.join(" "))
                    }
                    None => format!("{}\n", x.as_str().unwrap_or("")),
                })
                .collect();
            out.push(Field {
                name: at.to_owned(),
                label: label(at),
                number: false,
                value,
                hint: if keys.is_some() {
                    "one “kind value” per line"
                } else {
                    "one per line"
                },
            });
        }
        Value::Number(_) => out.push(Field {
            name: at.to_owned(),
            label: label(at),
            number: true,
            value: number_text(v),
            hint: "",
        }),
        _ => {}
    }
}

/// `current` with the form's values put in, by the same shape.
fn apply(mut current: Value, form: &[(String, String)], shape: &Shape) -> Result<Value, Error> {
    for (name, text) in form {
        if !name.starts_with('/') {
            continue;
        }
        let Some(slot) = current.pointer_mut(name) else {
            return Err(Error::Invalid(format!("{}: no such setting", label(name))));
        };
        let what = label(name);
        *slot = match slot {
            Value::Number(n) => {
                let t = text.trim();
                if n.is_i64() || n.is_u64() {
                    Value::from(
                        t.parse::<i64>()
                            .map_err(|_| Error::Invalid(format!("{what}: a whole number")))?,
                    )
                } else {
                    let f = t
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .ok_or_else(|| Error::Invalid(format!("{what}: a number")))?;
                    Value::from(f)
                }
            }
            Value::Object(_) => {
                let mut m = Map::new();
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let (k, w) = line.split_once('=').ok_or_else(|| {
                        Error::Invalid(format!("{what}: write `key = weight`, not {line:?}"))
                    })?;
                    let w = w
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .ok_or_else(|| Error::Invalid(format!("{what}: {line:?} needs a number")))?;
                    m.insert(k.trim().to_owned(), Value::from(w));
                }
                Value::Object(m)
            }
            Value::Array(_) => {
                let keys = shape.objects.iter().find(|(p, _)| p == name).map(|(_, k)| *k);
                let mut items = Vec::new();
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    items.push(match keys {
                        Some(keys) => {
                            let parts: Vec<&str> = line.splitn(keys.len(), char::is_whitespace).collect();
                            if parts.len() != keys.len() {
                                return Err(Error::Invalid(format!(
                                    "{what}: write `{}`, not {line:?}",
                                    keys.join(" ")
                                )));
                            }
                            Value::Object(
                                keys.iter()
                                    .zip(parts)
                                    .map(|(k, p)| ((*k).to_owned(), Value::from(p.trim())))
                                    .collect(),
                            )
                        }
                        None => Value::from(line),
                    });
                }
                Value::Array(items)
            }
            _ => return Err(Error::Invalid(format!("{what}: cannot be set here"))),
        };
    }
    Ok(current)
}

fn as_json(v: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(e.to_string()))
}

#[derive(Template, WebTemplate)]
#[template(path = "tuning.html")]
pub struct TuningPage {
    correlation: Vec<Field>,
    assessment: Vec<Field>,
    may_correlation: bool,
    may_assessment: bool,
    may_iocs: bool,
    csrf: String,
    /// The outcome of the last form: (its section, refused?, what to say).
    said: Option<(&'static str, bool, String)>,
    /// What was pasted for import (kept when refused).
    ioc_text: String,
}

async fn page(s: &AppState, p: &Principal, ctx: TenantCtx) -> Result<TuningPage, Error> {
    let tx = s.store.begin_tenant(ctx.tenant).await?;
    let c = correlate::settings(&tx).await?;
    let a = assess::settings(&tx).await?;
    tx.commit().await?;
    let (mut correlation, mut assessment) = (Vec::new(), Vec::new());
    fields(&as_json(&c)?, "", &CORRELATION, &mut correlation);
    fields(&as_json(&a)?, "", &ASSESSMENT, &mut assessment);
    let csrf = match p {
        Principal::Session { info, .. } => info.csrf.clone(),
        _ => String::new(),
    };
    Ok(TuningPage {
        correlation,
        assessment,
        may_correlation: s.authz.allows(ctx.role, "correlation", "configure"),
        may_assessment: s.authz.allows(ctx.role, "assessment", "configure"),
        may_iocs: s.authz.allows(ctx.role, "ioc_list", "manage"),
        csrf,
        said: None,
        ioc_text: String::new(),
    })
}

pub async fn show(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
) -> Response {
    match page(&s, &p, ctx).await {
        Ok(pg) => pg.into_response(),
        Err(e) => page_error(e),
    }
}

/// The page again saying how a form went (422 when refused).
async fn answer(
    s: &AppState,
    p: &Principal,
    ctx: TenantCtx,
    section: &'static str,
    outcome: Result<String, Error>,
    ioc_text: String,
) -> Response {
    let (status, said) = match outcome {
        Ok(m) => (axum::http::StatusCode::OK, (section, false, m)),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let api = crate::web::ApiError::from(e);
            (api.status, (section, true, api.message))
        }
        Err(e) => return page_error(e),
    };
    match page(s, p, ctx).await {
        Ok(mut pg) => {
            pg.said = Some(said);
            pg.ioc_text = if status.is_success() {
                String::new()
            } else {
                ioc_text
            };
            (status, pg).into_response()
        }
        Err(e) => page_error(e),
    }
}

pub async fn set_correlation(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let outcome = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let current = as_json(&correlate::settings(&tx).await?)?;
        let new: correlate::Settings = serde_json::from_value(apply(current, &f, &CORRELATION)?)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        correlate::set_settings(&tx, s.clock.as_ref(), &actor, new).await?;
        tx.commit().await?;
        Ok("Saved: alerts from now on are correlated with these settings.".to_owned())
    }
    .await;
    answer(&s, &p, ctx, "correlation", outcome, String::new()).await
}

pub async fn set_assessment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let outcome = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let current = as_json(&assess::settings(&tx).await?)?;
        let new: assess::Settings = serde_json::from_value(apply(current, &f, &ASSESSMENT)?)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        assess::set_settings(&tx, s.clock.as_ref(), &actor, new).await?;
        tx.commit().await?;
        Ok("Saved: the next investigation rounds assess with these settings.".to_owned())
    }
    .await;
    answer(&s, &p, ctx, "assessment", outcome, String::new()).await
}

#[derive(Debug, serde::Deserialize)]
pub struct IocForm {
    #[serde(default)]
    format: String,
    #[serde(default)]
    content: String,
}

pub async fn import_iocs(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<TenantCtx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<IocForm>,
) -> Response {
    let actor = p.actor(Some(ctx.role), Some(peer.ip().to_string()));
    let outcome = async {
        let tx = s.store.begin_tenant(ctx.tenant).await?;
        let r = iocs::import(&tx, s.clock.as_ref(), &actor, &f.format, &f.content).await?;
        tx.commit().await?;
        Ok(format!(
            "Imported: {} added, {} already listed, {} skipped (no supported observable).",
            r.added, r.duplicates, r.skipped
        ))
    }
    .await;
    answer(&s, &p, ctx, "iocs", outcome, f.content).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_settings_form_reads_back_what_it_shows() {
        let v = json!({"window_hours": 24, "min_weight": 0.3, "weights": {"ip/nat": 0.1},
                       "ignore": [{"kind": "ip", "value": "10.0.0.1"}], "noise": {"rare_share": 0.05}});
        let mut f = Vec::new();
        fields(&v, "", &CORRELATION, &mut f);
        let form: Vec<(String, String)> = f.iter().map(|x| (x.name.clone(), x.value.clone())).collect();
        assert_eq!(apply(v.clone(), &form, &CORRELATION).unwrap(), v);
        // Edited: a map line added, an ignore line added, a number changed.
        let edited = vec![
            ("/weights".to_owned(), "ip/nat = 0.1\ndomain = 0.5\n".to_owned()),
            ("/ignore".to_owned(), "ip 10.0.0.1\nhost scanner-01\n".to_owned()),
            ("/window_hours".to_owned(), "48".to_owned()),
            ("csrf".to_owned(), "x".to_owned()),
        ];
        let got = apply(v.clone(), &edited, &CORRELATION).unwrap();
        assert_eq!(got["weights"]["domain"], 0.5);
        assert_eq!(got["ignore"][1], json!({"kind": "host", "value": "scanner-01"}));
        assert_eq!(got["window_hours"], 48);
        // Refused, each naming the setting.
        for (name, text) in [
            ("/window_hours", "1.5"),
            ("/min_weight", "NaN"),
            ("/weights", "domain 0.5"),
            ("/ignore", "onlyone"),
            ("/nope", "1"),
        ] {
            let e = apply(v.clone(), &[(name.to_owned(), text.to_owned())], &CORRELATION).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{name}: {e:?}");
        }
    }
}
