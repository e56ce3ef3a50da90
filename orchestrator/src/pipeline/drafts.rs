//! Drafts: a case brief (summary, scope, affected entities, timeline
//! highlights) and recommendations, where every sentence cites evidence (an
//! alert of the case and a JSON pointer into it) and every recommendation
//! lists its signals, each with a weight and a citation, and their total.
//!
//! The validator refuses a draft with any uncited sentence, any citation
//! outside the case or pointing nowhere, or a total that is not the sum of
//! its weights, before anyone sees it. The default drafter is deterministic
//! and offline. Drafts are versioned and stay drafts until a person
//! approves them; executives see approved briefs only.

use std::collections::BTreeMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::pipeline::{iocs, timeline};
use crate::store::TenantTx;
use crate::store::entity::{alert, case_alert, draft, observable};
use crate::{Clock, Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Citation {
    /// The cited alert of the case …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<Uuid>,
    /// … or the cited evidence item of the case (exactly one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<Uuid>,
    /// JSON pointer into the cited document.
    pub pointer: String,
}

impl Citation {
    pub fn alert(id: Uuid, pointer: impl Into<String>) -> Self {
        Citation {
            alert_id: Some(id),
            evidence_id: None,
            pointer: pointer.into(),
        }
    }

    pub fn evidence(id: Uuid, pointer: impl Into<String>) -> Self {
        Citation {
            alert_id: None,
            evidence_id: Some(id),
            pointer: pointer.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Sentence {
    pub text: String,
    pub cites: Vec<Citation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Signal {
    pub name: String,
    pub weight: f64,
    pub cites: Vec<Citation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Recommendation {
    /// `escalate_critical`, `open_ticket`, `close_benign` or `contain_host`.
    pub action: String,
    pub signals: Vec<Signal>,
    pub total: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
#[schema(as = DraftBody)]
pub struct Body {
    pub summary: Vec<Sentence>,
    pub scope: Vec<Sentence>,
    pub entities: Vec<Sentence>,
    pub timeline: Vec<Sentence>,
    pub recommendations: Vec<Recommendation>,
}

const ACTIONS: &[&str] = &["escalate_critical", "open_ticket", "close_benign", "contain_host"];

/// What citations of a case may point into: its alerts, parsed, and its
/// collected evidence items.
struct Cited {
    alerts: BTreeMap<Uuid, (Value, String)>,
    evidence: BTreeMap<Uuid, Value>,
}

/// The case's alerts and evidence items, parsed.
async fn evidence(tx: &TenantTx, case_id: Uuid) -> Result<Cited> {
    crate::engine::cases::get(tx, case_id).await?;
    let ids: Vec<Uuid> = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?
        .into_iter()
        .map(|l| l.alert_id)
        .collect();
    let mut alerts = BTreeMap::new();
    for a in alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tx.tenant().0))
        .filter(alert::Column::Id.is_in(ids))
        .all(&**tx)
        .await?
    {
        let v: Value = serde_json::from_str(&a.raw).map_err(|e| Error::Invalid(e.to_string()))?;
        alerts.insert(a.id, (v, a.format));
    }
    let evidence = crate::pipeline::evidence::documents(tx, case_id).await?;
    Ok(Cited { alerts, evidence })
}

fn check_cites(cites: &[Citation], ev: &Cited, at: &str) -> Result<()> {
    if cites.is_empty() {
        return Err(Error::Invalid(format!("{at}: no citation")));
    }
    for c in cites {
        let (doc, what) = match (c.alert_id, c.evidence_id) {
            (Some(a), None) => (
                ev.alerts
                    .get(&a)
                    .map(|(d, _)| d)
                    .ok_or_else(|| Error::Invalid(format!("{at}: cites alert {a} outside this case")))?,
                format!("alert {a}"),
            ),
            (None, Some(e)) => (
                ev.evidence
                    .get(&e)
                    .ok_or_else(|| Error::Invalid(format!("{at}: cites evidence {e} outside this case")))?,
                format!("evidence {e}"),
            ),
            _ => {
                return Err(Error::Invalid(format!(
                    "{at}: a citation names exactly one of alert_id and evidence_id"
                )));
            }
        };
        if !c.pointer.starts_with('/') || doc.pointer(&c.pointer).is_none() {
            return Err(Error::Invalid(format!(
                "{at}: citation {} of {what} points nowhere",
                c.pointer
            )));
        }
    }
    Ok(())
}

/// Refuses a draft with an uncited claim, a citation outside the case or
/// pointing nowhere, or a recommendation whose total is not its weights' sum.
pub async fn validate(tx: &TenantTx, case_id: Uuid, body: &Body) -> Result<()> {
    let ev = evidence(tx, case_id).await?;
    let sections = [
        ("summary", &body.summary),
        ("scope", &body.scope),
        ("entities", &body.entities),
        ("timeline", &body.timeline),
    ];
    if body.summary.is_empty() {
        return Err(Error::Invalid("a brief needs a summary".into()));
    }
    for (name, sentences) in sections {
        for (n, s) in sentences.iter().enumerate() {
            let at = format!("{name} sentence {n}");
            if s.text.trim().is_empty() || s.text.len() > 2000 {
                return Err(Error::Invalid(format!("{at}: empty or longer than 2000 bytes")));
            }
            check_cites(&s.cites, &ev, &at)?;
        }
    }
    for (n, r) in body.recommendations.iter().enumerate() {
        let at = format!("recommendation {n}");
        if !ACTIONS.contains(&r.action.as_str()) {
            return Err(Error::Invalid(format!("{at}: unknown action `{}`", r.action)));
        }
        if r.signals.is_empty() {
            return Err(Error::Invalid(format!("{at}: no signals")));
        }
        let mut sum = 0.0;
        for (k, s) in r.signals.iter().enumerate() {
            if !(-1.0..=1.0).contains(&s.weight) {
                return Err(Error::Invalid(format!("{at} signal {k}: weight must be -1 to 1")));
            }
            check_cites(&s.cites, &ev, &format!("{at} signal {k}"))?;
            sum += s.weight;
        }
        if (sum - r.total).abs() > 1e-6 {
            return Err(Error::Invalid(format!(
                "{at}: total {} is not the sum of its weights ({sum})",
                r.total
            )));
        }
    }
    Ok(())
}

/// The deterministic, offline drafter.
pub async fn draft_of(tx: &TenantTx, case_id: Uuid) -> Result<Body> {
    let a = crate::pipeline::assess::settings(tx).await?;
    let w = &a.weights;
    let rows = timeline::of_case(tx, case_id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.evidence.alert_id).collect();
    let obs = observable::Entity::find()
        .filter(observable::Column::TenantId.eq(tx.tenant().0))
        .filter(observable::Column::AlertId.is_in(ids.clone()))
        .all(&**tx)
        .await?;
    let anchor = |alert: Uuid| -> Option<Citation> {
        rows.iter()
            .find(|r| r.evidence.alert_id == alert)
            .and_then(|r| r.evidence.pointer.clone())
            .or_else(|| {
                obs.iter()
                    .find(|o| o.alert_id == alert)
                    .map(|o| o.pointer.clone())
            })
            .map(|pointer| Citation::alert(alert, pointer))
    };
    let cite = |o: &observable::Model| Citation::alert(o.alert_id, o.pointer.clone());
    let mut body = Body::default();
    let anchored: Vec<Citation> = ids.iter().filter_map(|a| anchor(*a)).collect();
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let mut cites: Vec<Citation> = anchored.iter().take(1).cloned().collect();
        cites.extend(anchored.last().cloned().filter(|c| Some(c) != cites.first()));
        let mut formats: Vec<&str> = rows.iter().map(|r| r.format.as_str()).collect();
        formats.sort_unstable();
        formats.dedup();
        body.summary.push(Sentence {
            text: format!(
                "{} alert{} ({}) between {} and {}.",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" },
                formats.join(", "),
                first.at.format("%Y-%m-%d %H:%M UTC"),
                last.at.format("%Y-%m-%d %H:%M UTC")
            ),
            cites,
        });
    }
    // Affected entities: each with up to three citations.
    let mut by_entity: BTreeMap<(String, String), Vec<&observable::Model>> = BTreeMap::new();
    for o in &obs {
        if matches!(
            o.kind.as_str(),
            "host" | "user" | "ip" | "domain" | "file_hash" | "url" | "email"
        ) {
            by_entity
                .entry((o.kind.clone(), o.value.clone()))
                .or_default()
                .push(o);
        }
    }
    let count = |kind: &str| by_entity.keys().filter(|(k, _)| k == kind).count();
    let (hosts, users) = (count("host"), count("user"));
    let mut scope_cites: Vec<Citation> = by_entity
        .iter()
        .filter(|((k, _), _)| k == "host" || k == "user")
        .filter_map(|(_, v)| v.first().map(|o| cite(o)))
        .take(5)
        .collect();
    if scope_cites.is_empty() {
        scope_cites.extend(anchored.first().cloned());
    }
    if !scope_cites.is_empty() {
        body.scope.push(Sentence {
            text: format!("{hosts} host(s) and {users} user(s) are involved."),
            cites: scope_cites,
        });
    }
    for ((kind, value), list) in by_entity.iter().take(10) {
        let alerts: std::collections::BTreeSet<Uuid> = list.iter().map(|o| o.alert_id).collect();
        body.entities.push(Sentence {
            text: format!(
                "{} {value} appears in {} alert(s).",
                kind.replace('_', " "),
                alerts.len()
            ),
            cites: list.iter().take(3).map(|o| cite(o)).collect(),
        });
    }
    // What the tenant's tools say of the case's entities (evidence items
    // collected through read scopes; the newest round's item per lookup).
    let enrichment = enrichment(tx, case_id, w).await?;
    body.entities.extend(enrichment.entities);
    for r in rows.iter().filter(|r| r.evidence.pointer.is_some()).take(5) {
        body.timeline.push(Sentence {
            text: format!("{}: {}", r.at.format("%Y-%m-%d %H:%M:%S UTC"), r.summary),
            cites: vec![Citation::alert(
                r.evidence.alert_id,
                r.evidence.pointer.clone().unwrap_or_default(),
            )],
        });
    }
    // Recommendations from signals.
    // One signal per listed indicator, citing up to three sightings.
    let mut hits: BTreeMap<(String, String), Vec<Citation>> = BTreeMap::new();
    for s in iocs::signals(tx, case_id).await? {
        hits.entry((s.kind, s.value))
            .or_default()
            .push(Citation::alert(s.alert_id, s.pointer));
    }
    let mut signals = Vec::new();
    for ((kind, value), cites) in hits.into_iter().take(5) {
        signals.push(Signal {
            name: format!("{} {value} is on the indicator list", kind.replace('_', " ")),
            weight: w.indicator,
            cites: cites.into_iter().take(3).collect(),
        });
    }
    if hosts >= 2 {
        signals.push(Signal {
            name: format!("{hosts} hosts involved"),
            weight: w.hosts,
            cites: by_entity
                .iter()
                .filter(|((k, _), _)| k == "host")
                .filter_map(|(_, v)| v.first().map(|o| cite(o)))
                .take(3)
                .collect(),
        });
    }
    if rows.len() >= 5
        && let Some(c) = anchored.first()
    {
        signals.push(Signal {
            name: format!("{} related alerts", rows.len()),
            weight: w.alerts,
            cites: vec![c.clone()],
        });
    }
    let parsed = rows_alerts(tx, &ids).await?;
    signals.extend(detection_signals(&parsed, w));
    signals.extend(enrichment.privileged.iter().cloned());
    // Known-benign patterns: every alert from an entity the tenant ignores
    // (its scanner), every detection one it knows to be benign.
    let ignore = crate::pipeline::correlate::settings(tx).await?.ignore;
    let known = known_source(&ids, &obs, &ignore);
    let benign: Vec<Signal> = known
        .map(|(names, cites)| Signal {
            name: format!(
                "every alert comes from {} on the tenant's ignore list",
                names.join(", ")
            ),
            weight: w.known_source,
            cites,
        })
        .into_iter()
        .chain(benign_detections(&parsed, &a).map(|(names, cites)| Signal {
            name: format!(
                "every alert is a detection the tenant knows to be benign ({})",
                names.join(", ")
            ),
            weight: w.benign_detection,
            cites,
        }))
        .collect();
    let any_benign = !benign.is_empty();
    signals.extend(benign);
    body.timeline.extend(enrichment.timeline);
    let total: f64 = signals.iter().map(|s| s.weight).sum();
    if total <= a.close_at && any_benign {
        body.recommendations.push(Recommendation {
            action: "close_benign".into(),
            signals,
            total,
        });
    } else if total >= a.ticket_at {
        let action = if total >= a.escalate_at {
            "escalate_critical"
        } else {
            "open_ticket"
        };
        // A host the EDR reports online and not contained, in a case worth
        // escalating: propose its containment (a gated write).
        if total >= a.escalate_at && !enrichment.uncontained.is_empty() {
            let mut s = signals.clone();
            s.extend(enrichment.uncontained.iter().cloned());
            let t: f64 = s.iter().map(|x| x.weight).sum();
            body.recommendations.push(Recommendation {
                action: "contain_host".into(),
                signals: s,
                total: t,
            });
        }
        body.recommendations.insert(
            0,
            Recommendation {
                action: action.into(),
                signals,
                total,
            },
        );
    }
    Ok(body)
}

/// What the evidence items add to a draft.
#[derive(Default)]
struct Enrichment {
    entities: Vec<Sentence>,
    timeline: Vec<Sentence>,
    /// One signal per host CrowdStrike reports as not contained, citing its
    /// status (the propose step reads the device from the cited item).
    uncontained: Vec<Signal>,
    /// One signal per user Identity Protection gives a privileged role.
    privileged: Vec<Signal>,
}

/// Identity Protection's role types that make an account privileged (its
/// Active Directory groups with control over the domain or its hosts).
pub const PRIVILEGED_ROLES: &[(&str, &str)] = &[
    ("DomainAdminsRole", "Domain Admins"),
    ("EnterpriseAdminsRole", "Enterprise Admins"),
    ("SchemaAdminsRole", "Schema Admins"),
    ("AdministratorsRole", "Administrators"),
    ("BuiltinAdministratorRole", "the built-in Administrator"),
    ("AccountOperatorsAdminRole", "Account Operators"),
    ("BackupOperatorsAdminRole", "Backup Operators"),
    ("ServerOperatorsAdminRole", "Server Operators"),
    ("PrintOperatorsAdminRole", "Print Operators"),
    ("KrbtgtAccountAdminRole", "the krbtgt account"),
    ("DomainControllersRole", "Domain Controllers"),
];

/// Privileged users signalled per case.
const PRIVILEGED_USERS: usize = 3;

/// How many enrichment events become timeline sentences.
const ENRICHMENT_EVENTS: usize = 10;

async fn enrichment(
    tx: &TenantTx,
    case_id: Uuid,
    w: &crate::pipeline::assess::Weights,
) -> Result<Enrichment> {
    use crate::pipeline::evidence::{self, CROWDSTRIKE_DEVICE, CROWDSTRIKE_IDENTITY, GRAYLOG_MESSAGES};
    let newest = evidence::newest(tx, case_id).await?;
    let mut out = Enrichment::default();
    for i in &newest {
        let Some(doc) = i.response.as_ref() else {
            continue;
        };
        let what = i.subject.replacen(':', " ", 1);
        match i.source.as_str() {
            CROWDSTRIKE_DEVICE => match doc.pointer("/resources/0") {
                Some(d) if d.is_object() => {
                    let f = |k: &str| d.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
                    let mut cites = vec![Citation::evidence(i.id, "/resources/0")];
                    let mut text = format!("CrowdStrike knows {what}");
                    if let Some(p) = f("platform_name") {
                        text.push_str(&format!(" as a {p}"));
                        if let Some(v) = f("os_version") {
                            text.push_str(&format!(" ({v})"));
                        }
                        text.push_str(" device");
                    }
                    if let Some(seen) = f("last_seen") {
                        text.push_str(&format!(", last seen {seen}"));
                        cites.push(Citation::evidence(i.id, "/resources/0/last_seen"));
                    }
                    if let Some(st) = f("status") {
                        text.push_str(&format!("; containment status: {st}"));
                        cites.push(Citation::evidence(i.id, "/resources/0/status"));
                        if st == "normal" && f("device_id").is_some() {
                            out.uncontained.push(Signal {
                                name: format!("CrowdStrike reports {what} online and not contained"),
                                weight: w.uncontained,
                                cites: vec![Citation::evidence(i.id, "/resources/0/status")],
                            });
                        }
                    }
                    text.push('.');
                    out.entities.push(Sentence { text, cites });
                }
                _ if doc.pointer("/resources").is_some() => out.entities.push(Sentence {
                    text: format!("CrowdStrike has no device record of {what}."),
                    cites: vec![Citation::evidence(i.id, "/resources")],
                }),
                _ => {}
            },
            CROWDSTRIKE_IDENTITY => match doc.pointer("/data/entities/nodes/0") {
                Some(n) if n.is_object() => {
                    let at = "/data/entities/nodes/0";
                    let f = |k: &str| n.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
                    let mut cites = vec![Citation::evidence(i.id, at)];
                    let mut text = format!("CrowdStrike Identity Protection knows {what}");
                    if let Some(sd) = f("secondaryDisplayName") {
                        text.push_str(&format!(" as {sd}"));
                    }
                    if let Some(ou) = n.pointer("/accounts/0/ou").and_then(Value::as_str) {
                        text.push_str(&format!(" (OU {ou})"));
                    }
                    if let Some(r) = n.get("riskScore").and_then(Value::as_f64) {
                        text.push_str(&format!(", risk score {r:.2}"));
                        if let Some(sev) = f("riskScoreSeverity") {
                            text.push_str(&format!(" ({})", sev.to_lowercase()));
                        }
                        cites.push(Citation::evidence(i.id, format!("{at}/riskScore")));
                    }
                    let roles: Vec<(usize, &str)> = n
                        .get("roles")
                        .and_then(Value::as_array)
                        .map(|rs| {
                            rs.iter()
                                .enumerate()
                                .filter_map(|(k, r)| r.get("type").and_then(Value::as_str).map(|t| (k, t)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let privileged: Vec<(usize, &str)> = roles
                        .iter()
                        .filter_map(|(k, t)| {
                            PRIVILEGED_ROLES
                                .iter()
                                .find(|(ty, _)| ty == t)
                                .map(|(_, label)| (*k, *label))
                        })
                        .collect();
                    if privileged.is_empty() {
                        text.push_str("; no privileged role");
                    } else {
                        let names: Vec<&str> = privileged.iter().map(|(_, l)| *l).collect();
                        text.push_str(&format!("; privileged: {}", names.join(", ")));
                        let role_cites: Vec<Citation> = privileged
                            .iter()
                            .take(3)
                            .map(|(k, _)| Citation::evidence(i.id, format!("{at}/roles/{k}/type")))
                            .collect();
                        cites.extend(role_cites.iter().cloned());
                        if out.privileged.len() < PRIVILEGED_USERS {
                            out.privileged.push(Signal {
                                name: format!("{what} is a privileged account ({})", names.join(", ")),
                                weight: w.privileged_account,
                                cites: role_cites,
                            });
                        }
                    }
                    text.push('.');
                    out.entities.push(Sentence { text, cites });
                }
                _ if doc.pointer("/data/entities/nodes").is_some() => out.entities.push(Sentence {
                    text: format!("CrowdStrike Identity Protection has no record of {what}."),
                    cites: vec![Citation::evidence(i.id, "/data/entities/nodes")],
                }),
                _ => {}
            },
            GRAYLOG_MESSAGES => {
                let Some(list) = doc.pointer("/messages").and_then(Value::as_array) else {
                    continue;
                };
                let (total, cite) = match doc.pointer("/total_results").and_then(Value::as_u64) {
                    Some(n) => (n, "/total_results"),
                    None => (list.len() as u64, "/messages"),
                };
                out.entities.push(Sentence {
                    text: format!("Graylog holds {total} message(s) naming {what} around the case's window."),
                    cites: vec![Citation::evidence(i.id, cite)],
                });
            }
            _ => {}
        }
    }
    // What the logs say happened, in order (the sequenced enrichment events).
    out.timeline = evidence::events(&newest)
        .into_iter()
        .take(ENRICHMENT_EVENTS)
        .map(|e| Sentence {
            text: crate::text::title(
                &format!(
                    "{}: {}: {} (Graylog)",
                    e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.source,
                    e.summary
                ),
                400,
                "message",
            ),
            cites: vec![Citation::evidence(e.evidence_id, e.pointer)],
        })
        .collect();
    Ok(out)
}

/// The entities on the ignore list every alert comes from (its device or
/// the source address), with a citation per alert (up to 3), if every
/// alert of the case has one.
fn known_source(
    ids: &[Uuid],
    obs: &[observable::Model],
    ignore: &[crate::pipeline::correlate::Ignored],
) -> Option<(Vec<String>, Vec<Citation>)> {
    use crate::pipeline::observables::{Kind, Observable, Role};
    if ids.is_empty() || ignore.is_empty() {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    let mut cites = Vec::new();
    for id in ids {
        let from = obs.iter().filter(|o| o.alert_id == *id).find(|o| {
            let Ok(kind) = o.kind.parse::<Kind>() else {
                return false;
            };
            let role = Observable::stored(kind, o.value.clone(), o.pointer.clone()).role;
            matches!(role, Role::Device | Role::Source)
                && ignore.iter().any(|i| i.kind == o.kind && i.value == o.value)
        })?;
        let name = format!("{} {}", from.kind.replace('_', " "), from.value);
        if !names.contains(&name) {
            names.push(name);
        }
        if cites.len() < 3 {
            cites.push(Citation::alert(from.alert_id, from.pointer.clone()));
        }
    }
    names.truncate(5);
    Some((names, cites))
}

/// Where an alert's detection is named.
const DETECTION_NAMES: [&str; 6] = [
    "/finding_info/title",
    "/rule/name",
    "/name",
    "/description",
    "/message",
    "/event/message",
];

/// The benign patterns every alert's detection name matches, with a
/// citation per alert (up to 3), if every alert matches one.
fn benign_detections(
    alerts: &[(Uuid, String, Value)],
    a: &crate::pipeline::assess::Settings,
) -> Option<(Vec<String>, Vec<Citation>)> {
    if alerts.is_empty() || a.benign_detections.is_empty() {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    let mut cites = Vec::new();
    for (id, _, v) in alerts {
        let (pattern, pointer) = DETECTION_NAMES.iter().find_map(|p| {
            let name = v.pointer(p).and_then(Value::as_str)?;
            a.benign(name).map(|b| (b.to_owned(), *p))
        })?;
        if !names.contains(&pattern) {
            names.push(pattern);
        }
        if cites.len() < 3 {
            cites.push(Citation::alert(*id, pointer));
        }
    }
    Some((names, cites))
}

/// The case's alerts, parsed, with their format.
async fn rows_alerts(tx: &TenantTx, ids: &[Uuid]) -> Result<Vec<(Uuid, String, Value)>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        for a in alert::Entity::find()
            .filter(alert::Column::TenantId.eq(tx.tenant().0))
            .filter(alert::Column::Id.is_in(chunk.iter().copied()))
            .all(&**tx)
            .await?
        {
            if let Ok(v) = serde_json::from_str::<Value>(&a.raw) {
                out.push((a.id, a.format, v));
            }
        }
    }
    out.sort_by_key(|(id, _, _)| *id);
    Ok(out)
}

/// How severe the source says an alert is: 0 (unknown) to 4 (critical),
/// with the pointer it was read from.
pub fn severity(format: &str, v: &Value) -> Option<(u8, &'static str)> {
    let num = |p: &'static str| v.pointer(p).and_then(Value::as_f64).map(|n| (n, p));
    let level = match format {
        // OCSF severity_id: 1 informational .. 4 high, 5 critical, 6 fatal.
        "ocsf" => num("/severity_id").map(|(n, p)| {
            (
                match n as i64 {
                    5.. => 4,
                    4 => 3,
                    3 => 2,
                    1..=2 => 1,
                    _ => 0,
                },
                p,
            )
        }),
        // Falcon: 0-100 (severity_name beside it).
        "crowdstrike" => num("/severity").map(|(n, p)| {
            (
                if n >= 90.0 {
                    4
                } else if n >= 70.0 {
                    3
                } else if n >= 40.0 {
                    2
                } else {
                    1
                },
                p,
            )
        }),
        // ECS event.severity: source-defined, commonly 0-100 (21 low, 47 medium, 73 high, 99 critical).
        "ecs" => num("/event/severity").map(|(n, p)| {
            (
                if n >= 99.0 {
                    4
                } else if n >= 73.0 {
                    3
                } else if n >= 47.0 {
                    2
                } else {
                    1
                },
                p,
            )
        }),
        // Graylog event priority: 1 low, 2 normal, 3 high.
        "graylog" => num("/event/priority").map(|(n, p)| {
            (
                if n >= 3.0 {
                    3
                } else if n >= 2.0 {
                    2
                } else {
                    1
                },
                p,
            )
        }),
        _ => None,
    };
    level.filter(|(l, _)| *l > 0)
}

/// The ATT&CK tactics an alert names (OCSF `finding_info.attacks`, Falcon
/// `tactic`, ECS `threat.tactic.name`) or that its detection name implies,
/// lower-cased, each with the pointer it was read from.
pub fn tactics(format: &str, v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |t: &str, p: String| {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && !out.iter().any(|(x, _)| *x == t) {
            out.push((t, p));
        }
    };
    match format {
        "ocsf" => {
            if let Some(list) = v.pointer("/finding_info/attacks").and_then(Value::as_array) {
                for (i, a) in list.iter().enumerate() {
                    if let Some(n) = a.pointer("/tactic/name").and_then(Value::as_str) {
                        add(n, format!("/finding_info/attacks/{i}/tactic/name"));
                    }
                }
            }
        }
        "crowdstrike" => {
            if let Some(n) = v.get("tactic").and_then(Value::as_str) {
                add(n, "/tactic".into());
            }
        }
        "ecs" => match v.pointer("/threat/tactic/name") {
            Some(Value::String(n)) => add(n, "/threat/tactic/name".into()),
            Some(Value::Array(list)) => {
                for (i, n) in list.iter().enumerate() {
                    if let Some(n) = n.as_str() {
                        add(n, format!("/threat/tactic/name/{i}"));
                    }
                }
            }
            _ => {}
        },
        _ => {}
    }
    // Detection names that say what happened.
    for p in DETECTION_NAMES {
        if let Some(s) = v.pointer(p).and_then(Value::as_str) {
            let s = s.to_lowercase();
            for (needle, tactic) in [
                ("credential", "credential access"),
                ("lsass", "credential access"),
                ("mimikatz", "credential access"),
                ("lateral", "lateral movement"),
                ("ransom", "impact"),
                ("exfiltrat", "exfiltration"),
                ("beacon", "command and control"),
                ("c2 ", "command and control"),
                ("phishing", "initial access"),
                ("brute force", "credential access"),
                ("failed logins", "credential access"),
                ("powershell", "execution"),
            ] {
                if s.contains(needle) {
                    add(tactic, p.to_owned());
                }
            }
        }
    }
    out
}

/// Tactics that say an intrusion is under way, not only attempted.
const GRAVE: &[&str] = &[
    "credential access",
    "lateral movement",
    "exfiltration",
    "impact",
    "command and control",
];

/// Signals from what the sources say of their alerts: severity and ATT&CK
/// tactics (named or implied by the detection name), each citing the
/// fields it was read from.
pub fn detection_signals(
    alerts: &[(Uuid, String, Value)],
    w: &crate::pipeline::assess::Weights,
) -> Vec<Signal> {
    let mut out = Vec::new();
    let mut high: Vec<Citation> = Vec::new();
    let mut critical = false;
    let mut tactic_cites: BTreeMap<String, Vec<Citation>> = BTreeMap::new();
    for (id, format, v) in alerts {
        if let Some((level, p)) = severity(format, v)
            && level >= 3
        {
            critical |= level >= 4;
            high.push(Citation::alert(*id, p.to_owned()));
        }
        for (t, p) in tactics(format, v) {
            tactic_cites.entry(t).or_default().push(Citation::alert(*id, p));
        }
    }
    if !high.is_empty() {
        out.push(Signal {
            name: format!(
                "{} alert{} rated {} by the source",
                high.len(),
                if high.len() == 1 { "" } else { "s" },
                if critical { "critical" } else { "high" }
            ),
            weight: if critical {
                w.severity_critical
            } else {
                w.severity_high
            },
            cites: high.into_iter().take(3).collect(),
        });
    }
    let mut grave: Vec<(String, Vec<Citation>)> = Vec::new();
    let mut other: Vec<(String, Vec<Citation>)> = Vec::new();
    for (t, c) in tactic_cites {
        if GRAVE.contains(&t.as_str()) {
            grave.push((t, c));
        } else {
            other.push((t, c));
        }
    }
    for (t, c) in grave.into_iter().take(2) {
        out.push(Signal {
            name: format!("ATT&CK tactic: {t}"),
            weight: w.tactic_intrusion,
            cites: c.into_iter().take(3).collect(),
        });
    }
    for (t, c) in other.into_iter().take(2) {
        out.push(Signal {
            name: format!("ATT&CK tactic: {t}"),
            weight: w.tactic_other,
            cites: c.into_iter().take(3).collect(),
        });
    }
    out
}

/// A draft's state, as the API spells it (the schema of `Draft::state`).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DraftState {
    /// Waiting for a person.
    Draft,
    Approved,
    Rejected,
    /// A newer round's draft took its place before anyone decided.
    Superseded,
    /// A person edited it; the edit is the next version, approved.
    Edited,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Draft {
    pub id: Uuid,
    pub case_id: Uuid,
    pub version: i32,
    #[schema(value_type = DraftState)]
    pub state: String,
    pub drafter: String,
    pub body: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: Option<String>,
    /// An edited version: the version it was edited from, and what the
    /// person changed (a JSON diff of the bodies).
    pub edited_from: Option<Uuid>,
    pub edit_diff: Option<Value>,
}

impl From<draft::Model> for Draft {
    fn from(m: draft::Model) -> Self {
        Draft {
            id: m.id,
            case_id: m.case_id,
            version: m.version,
            state: m.state,
            drafter: m.drafter,
            body: m.body,
            created_at: m.created_at,
            decided_by: m.decided_by,
            decided_at: m.decided_at,
            reason: m.reason,
            edited_from: m.edited_from,
            edit_diff: m.edit_diff,
        }
    }
}

/// Stores a validated draft as the case's next version.
pub async fn store(
    tx: &TenantTx,
    clock: &dyn Clock,
    case_id: Uuid,
    body: &Body,
    drafter: &str,
) -> Result<Draft> {
    validate(tx, case_id, body).await?;
    let last = draft::Entity::find()
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .filter(draft::Column::CaseId.eq(case_id))
        .order_by_desc(draft::Column::Version)
        .one(&**tx)
        .await?;
    let m = draft::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(case_id),
        version: Set(last.map_or(1, |d| d.version + 1)),
        body: Set(serde_json::to_value(body).map_err(|e| Error::Invalid(e.to_string()))?),
        state: Set("draft".into()),
        drafter: Set(drafter.into()),
        created_at: Set(clock.now()),
        decided_by: Set(None),
        decided_at: Set(None),
        reason: Set(None),
        edited_from: Set(None),
        edit_diff: Set(None),
    }
    .insert(&**tx)
    .await?;
    Ok(m.into())
}

/// Marks the case's drafts older than `version` that no one decided as
/// superseded (they stay, readable, never approvable).
pub async fn supersede_older(tx: &TenantTx, case_id: Uuid, version: i32) -> Result<u64> {
    Ok(draft::Entity::update_many()
        .col_expr(
            draft::Column::State,
            sea_orm::sea_query::Expr::value("superseded"),
        )
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .filter(draft::Column::CaseId.eq(case_id))
        .filter(draft::Column::State.eq("draft"))
        .filter(draft::Column::Version.lt(version))
        .exec(&**tx)
        .await?
        .rows_affected)
}

/// Drafts the case with the deterministic drafter.
pub async fn generate(tx: &TenantTx, clock: &dyn Clock, case_id: Uuid) -> Result<Draft> {
    let body = draft_of(tx, case_id).await?;
    store(tx, clock, case_id, &body, "deterministic").await
}

/// A person approves or rejects (reason required) a draft. Audited.
pub async fn decide(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    id: Uuid,
    approve: bool,
    reason: Option<&str>,
) -> Result<Draft> {
    let d = model(tx, id).await?;
    if d.state != "draft" {
        return Err(Error::Conflict(format!("the draft is {}", d.state)));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(Error::Invalid("a rejection needs a reason".into()));
    }
    let state = if approve { "approved" } else { "rejected" };
    draft::Entity::update_many()
        .col_expr(draft::Column::State, Expr::value(state))
        .col_expr(draft::Column::DecidedBy, Expr::value(actor.label.clone()))
        .col_expr(draft::Column::DecidedAt, Expr::value(clock.now()))
        .col_expr(draft::Column::Reason, Expr::value(reason.map(str::to_owned)))
        .filter(draft::Column::Id.eq(id))
        .filter(draft::Column::State.eq("draft"))
        .exec(&**tx)
        .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: if approve { "draft.approve" } else { "draft.reject" },
            target: format!("draft:{id}"),
            summary: json!({"case": d.case_id, "version": d.version, "reason": reason}),
        },
    )
    .await?;
    let m = draft::Entity::find_by_id(id)
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("draft"))?;
    Ok(m.into())
}

/// One draft of the tenant.
pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Draft> {
    Ok(model(tx, id).await?.into())
}

/// The draft row, if it belongs to the transaction's tenant (else NotFound).
async fn model(tx: &TenantTx, id: Uuid) -> Result<draft::Model> {
    draft::Entity::find_by_id(id)
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("draft"))
}

/// A case's drafts, newest first; `approved_only` for executives.
pub async fn list(tx: &TenantTx, case_id: Uuid, approved_only: bool) -> Result<Vec<Draft>> {
    crate::engine::cases::get(tx, case_id).await?;
    let mut q = draft::Entity::find()
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .filter(draft::Column::CaseId.eq(case_id));
    if approved_only {
        q = q.filter(draft::Column::State.eq("approved"));
    }
    Ok(q.order_by_desc(draft::Column::Version)
        .all(&**tx)
        .await?
        .into_iter()
        .map(Draft::from)
        .collect())
}

/// Redacts what must not leave Vigil from text sent to a model: e-mail
/// addresses, `key=value` secrets (password, token, secret, api key) and
/// AWS-style access key ids.
pub fn sanitize(text: &str) -> String {
    const KEYS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "authorization",
    ];
    let mut out = Vec::new();
    for word in text.split(' ') {
        let lower = word.to_ascii_lowercase();
        let secret_kv = KEYS.iter().find_map(|k| {
            lower
                .find(k)
                .and_then(|i| word[i + k.len()..].find(['=', ':']).map(|j| i + k.len() + j + 1))
        });
        let aws = word.len() >= 20
            && word.split(|c: char| !c.is_ascii_alphanumeric()).any(|t| {
                t.len() == 20
                    && t.starts_with("AKIA")
                    && t.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            });
        if let Some(cut) = secret_kv {
            out.push(format!("{}[redacted]", &word[..cut]));
        } else if aws {
            out.push("[redacted-key]".to_owned());
        } else if word.contains('@') && word.split('@').nth(1).is_some_and(|d| d.contains('.')) {
            out.push("[redacted-email]".to_owned());
        } else {
            out.push(word.to_owned());
        }
    }
    out.join(" ")
}

/// [`sanitize`], then the tenant's own patterns (the llm integration's
/// `redact` config): each match becomes `[redacted-<name>]`.
pub fn sanitize_with(text: &str, patterns: &[vigil_integrations::llm::RedactPattern]) -> String {
    let mut out = sanitize(text);
    for p in patterns {
        if p.regex.is_match(&out) {
            out = p
                .regex
                .replace_all(&out, format!("[redacted-{}]", p.name).as_str())
                .into_owned();
        }
    }
    out
}

fn sanitize_value(v: &Value, patterns: &[vigil_integrations::llm::RedactPattern]) -> Value {
    match v {
        Value::String(s) => Value::String(sanitize_with(s, patterns)),
        Value::Array(a) => Value::Array(a.iter().map(|v| sanitize_value(v, patterns)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (sanitize_with(k, patterns), sanitize_value(v, patterns)))
                .collect(),
        ),
        other => other.clone(),
    }
}

const INSTRUCTIONS: &str = "You draft security investigation briefs. Answer with one JSON object \
of the shape of `baseline` (summary, scope, entities, timeline: arrays of {text, cites}; \
recommendations: array of {action, signals: [{name, weight, cites}], total}). Every sentence \
must cite evidence as {alert_id, pointer} or {evidence_id, pointer} taken from the context; \
cite nothing else. \
`total` is the sum of the signal weights (each -1 to 1; a benign signal weighs below 0). Actions: escalate_critical, open_ticket, \
close_benign, contain_host.";

/// Drafts the case with the tenant's model: sanitized context out, the
/// answer through the same validator. An answer that fails (or a model that
/// cannot be reached) is discarded; the deterministic draft is stored and
/// its drafter says why.
pub async fn generate_with_model(
    connectors: &crate::connect::connectors::Connectors,
    clock: &dyn Clock,
    tenant: crate::TenantId,
    case_id: Uuid,
    llm_integration: Uuid,
) -> Result<Draft> {
    generate_with_model_for(connectors, clock, tenant, case_id, llm_integration, "").await
}

/// How long the model may think before the deterministic draft is used
/// (inside the investigation step's lease).
pub const MODEL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// [`generate_with_model`], the drafter's name ending in `suffix` (the
/// investigation's round), whatever the model or the fallback is called.
pub async fn generate_with_model_for(
    connectors: &crate::connect::connectors::Connectors,
    clock: &dyn Clock,
    tenant: crate::TenantId,
    case_id: Uuid,
    llm_integration: Uuid,
    suffix: &str,
) -> Result<Draft> {
    use vigil_integrations::Kind;
    let store = connectors.store();
    // 1. The context, read and sanitized (no transaction held while the model thinks).
    let tx = store.begin_tenant(tenant).await?;
    let baseline = draft_of(&tx, case_id).await?;
    let rows = timeline::of_case(&tx, case_id).await?;
    tx.commit().await?;
    let context = json!({
        "baseline": baseline,
        "timeline": rows.iter().map(|r| json!({"at": r.at, "summary": r.summary, "alert_id": r.evidence.alert_id, "pointer": r.evidence.pointer})).collect::<Vec<_>>(),
    });
    // 2. The model, sent the context sanitized with the built-in rules and
    //    the tenant's patterns.
    let answer = async {
        let (config, kind, key) = connectors
            .open(tenant, llm_integration)
            .await
            .map_err(|e| e.to_string())?;
        if kind != Kind::Llm {
            return Err(format!("integration is {kind}, not llm"));
        }
        let patterns = vigil_integrations::llm::redact_patterns(&config).map_err(|e| e.to_string())?;
        let context = sanitize_value(&context, &patterns);
        let client = vigil_integrations::llm::Llm::new(
            &config,
            &key,
            connectors.http().clone(),
            connectors.guard(tenant, Kind::Llm, llm_integration),
        )
        .map_err(|e| e.to_string())?;
        let text = client
            .complete(INSTRUCTIONS, &context.to_string())
            .await
            .map_err(|e| e.to_string())?;
        let json_text = text
            .trim()
            .trim_start_matches("```json")
            .trim_start_matches("```")
            .trim_end_matches("```")
            .trim();
        let body: Body = serde_json::from_str(json_text).map_err(|e| format!("not a draft: {e}"))?;
        Ok((client.name(), body))
    };
    let answer: std::result::Result<(String, Body), String> = tokio::time::timeout(MODEL_DEADLINE, answer)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", MODEL_DEADLINE.as_secs())));
    // 3. Validated, or the deterministic draft with the reason.
    let tx = store.begin_tenant(tenant).await?;
    let stored = match answer {
        Ok((name, body)) => match store_draft(&tx, clock, case_id, &body, &name, suffix).await {
            Ok(d) => d,
            Err(Error::Invalid(why)) => {
                store_draft(
                    &tx,
                    clock,
                    case_id,
                    &baseline,
                    &format!("deterministic (model output refused: {why})"),
                    suffix,
                )
                .await?
            }
            Err(e) => return Err(e),
        },
        Err(why) => {
            store_draft(
                &tx,
                clock,
                case_id,
                &baseline,
                &format!("deterministic (model unavailable: {why})"),
                suffix,
            )
            .await?
        }
    };
    tx.commit().await?;
    Ok(stored)
}

async fn store_draft(
    tx: &TenantTx,
    clock: &dyn Clock,
    case_id: Uuid,
    body: &Body,
    drafter: &str,
    suffix: &str,
) -> Result<Draft> {
    let mut drafter: String = drafter
        .chars()
        .take(300 - suffix.chars().count().min(100))
        .collect();
    if !suffix.is_empty() {
        drafter.push(' ');
        drafter.extend(suffix.chars().take(100));
    }
    store(tx, clock, case_id, body, &drafter).await
}

/// The tenant's approved briefs, newest decision first, with their case's
/// title: what executives read (no drafts, no raw telemetry).
pub async fn approved(tx: &TenantTx, limit: u64, offset: u64) -> Result<(Vec<(Draft, String)>, u64)> {
    use sea_orm::{PaginatorTrait, QuerySelect};
    let q = draft::Entity::find()
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .filter(draft::Column::State.eq("approved"));
    let total = q.clone().count(&**tx).await?;
    let rows = q
        .order_by_desc(draft::Column::DecidedAt)
        .order_by_desc(draft::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(&**tx)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for d in rows {
        let title = crate::engine::cases::get(tx, d.case_id).await?.title;
        out.push((Draft::from(d), title));
    }
    Ok((out, total))
}

/// One approved brief (else NotFound: a draft that no one approved is not
/// a brief).
pub async fn approved_one(tx: &TenantTx, id: Uuid) -> Result<(Draft, String)> {
    let d = draft::Entity::find_by_id(id)
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .filter(draft::Column::State.eq("approved"))
        .one(&**tx)
        .await?
        .ok_or(Error::NotFound("brief"))?;
    let title = crate::engine::cases::get(tx, d.case_id).await?.title;
    Ok((Draft::from(d), title))
}

/// A person edits a draft and approves the edit at once: the draft becomes
/// `edited` (never approvable again), and the edited body is stored as the
/// case's next version, `approved`, pointing at the version it came from
/// with the diff of the two bodies. The edit is validated like any draft
/// (every claim cited, every citation inside the case). Audited.
pub async fn edit_and_approve(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    id: Uuid,
    edited: &Body,
) -> Result<Draft> {
    let d = model(tx, id).await?;
    if d.state != "draft" {
        return Err(Error::Conflict(format!("the draft is {}", d.state)));
    }
    for s in edited
        .summary
        .iter()
        .chain(&edited.scope)
        .chain(&edited.entities)
        .chain(&edited.timeline)
    {
        let t = s.text.trim();
        if t.is_empty() || t.chars().count() > 2000 || t.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::Invalid(
                "each claim: 1 to 2000 characters, no control characters".into(),
            ));
        }
    }
    validate(tx, d.case_id, edited).await?;
    let after = serde_json::to_value(edited).map_err(|e| Error::Invalid(e.to_string()))?;
    let diff = crate::engine::json_diff(&d.body, &after);
    if diff.is_empty() {
        return Err(Error::Invalid(
            "nothing was edited: approve the draft instead".into(),
        ));
    }
    let now = clock.now();
    draft::Entity::update_many()
        .col_expr(draft::Column::State, Expr::value("edited"))
        .col_expr(draft::Column::DecidedBy, Expr::value(actor.label.clone()))
        .col_expr(draft::Column::DecidedAt, Expr::value(now))
        .filter(draft::Column::Id.eq(id))
        .filter(draft::Column::State.eq("draft"))
        .exec(&**tx)
        .await?;
    let last = draft::Entity::find()
        .filter(draft::Column::TenantId.eq(tx.tenant().0))
        .filter(draft::Column::CaseId.eq(d.case_id))
        .order_by_desc(draft::Column::Version)
        .one(&**tx)
        .await?
        .map_or(d.version, |l| l.version);
    let m = draft::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tx.tenant().0),
        case_id: Set(d.case_id),
        version: Set(last + 1),
        body: Set(after),
        state: Set("approved".into()),
        drafter: Set(format!("edit of version {} by a person", d.version)),
        created_at: Set(now),
        decided_by: Set(Some(actor.label.clone())),
        decided_at: Set(Some(now)),
        reason: Set(None),
        edited_from: Set(Some(d.id)),
        edit_diff: Set(Some(Value::Array(diff.clone()))),
    }
    .insert(&**tx)
    .await?;
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "draft.edit_approve",
            target: format!("draft:{}", m.id),
            summary: json!({"case": d.case_id, "from": {"id": d.id, "version": d.version}, "version": m.version, "diff": diff}),
        },
    )
    .await?;
    Ok(m.into())
}
