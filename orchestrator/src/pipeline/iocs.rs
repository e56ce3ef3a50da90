//! Per-tenant indicator lists: file hashes, IPs, domains and URLs, imported
//! from CSV (`kind,value[,description]`) or STIX 2.1 bundles (`indicator`
//! objects with STIX patterns). Values are normalized as extraction
//! normalizes alert entities, so a defanged or upper-case indicator matches.
//! An entity of a case's alerts that matches an indicator is a signal.
//!
//! An import is all or nothing: the first malformed CSV line, or a STIX
//! document that is not a bundle, refuses the whole import with its line or
//! reason. STIX indicators whose patterns name no supported object (e.g. a
//! process) are skipped and counted.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{self, Actor, Event};
use crate::pipeline::observables::{Kind, normalize};
use crate::store::TenantTx;
use crate::store::entity::{case_alert, ioc, observable};
use crate::{Clock, Error, Result};

/// Most indicators one import may carry.
pub const MAX_IMPORT: usize = 50_000;

/// One indicator to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub kind: Kind,
    pub value: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub added: usize,
    pub duplicates: usize,
    /// STIX indicators with no supported observable in their pattern.
    pub skipped: usize,
}

fn indicator(kind: Kind, raw: &str, description: Option<String>, at: &str) -> Result<Indicator> {
    if !matches!(kind, Kind::Ip | Kind::Domain | Kind::Url | Kind::FileHash) {
        return Err(Error::Invalid(format!(
            "{at}: indicators are ip, domain, url or file_hash"
        )));
    }
    let value = normalize(kind, raw)
        .ok_or_else(|| Error::Invalid(format!("{at}: `{raw}` is not a valid {}", kind.as_str())))?;
    Ok(Indicator {
        kind,
        value,
        description,
    })
}

/// Parses CSV (RFC 4180, with the `csv` crate: quoted fields with commas,
/// quotes and line breaks, CRLF, a UTF-8 byte-order mark) of
/// `kind,value[,description]`; a first row naming the columns is skipped;
/// blank lines and `#` comments are ignored. All or nothing: the first bad
/// row refuses the import, naming its line.
pub fn parse_csv(text: &str) -> Result<Vec<Indicator>> {
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (n, row) in rows.records().enumerate() {
        let row = row.map_err(|e| {
            let at = e
                .position()
                .map_or(String::new(), |p| format!("line {}: ", p.line()));
            Error::Invalid(format!("{at}not CSV: {e}"))
        })?;
        let line = row.position().map_or(n as u64 + 1, csv::Position::line);
        let at = format!("line {line}");
        if row.iter().all(str::is_empty) {
            continue;
        }
        let kind = row.get(0).unwrap_or("");
        if n == 0 && kind.eq_ignore_ascii_case("kind") {
            continue;
        }
        if row.len() < 2 || row.len() > 3 {
            return Err(Error::Invalid(format!(
                "{at}: expected kind,value[,description] ({} columns; quote a value that holds a comma)",
                row.len()
            )));
        }
        let kind: Kind = kind
            .parse()
            .map_err(|_| Error::Invalid(format!("{at}: unknown kind `{}`", kind.escape_debug())))?;
        let desc = row
            .get(2)
            .filter(|d| !d.is_empty())
            .map(|d| crate::text::storable(d).into_owned());
        out.push(indicator(kind, row.get(1).unwrap_or(""), desc, &at)?);
    }
    Ok(out)
}

/// The comparisons `object:path = 'value'` of a STIX pattern.
fn comparisons(pattern: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(eq) = rest.find('=') {
        let (lhs, after) = rest.split_at(eq);
        let path = lhs
            .rsplit(['[', '(', ' '])
            .find(|s| !s.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        let after = after[1..].trim_start();
        let Some(body) = after.strip_prefix('\'') else {
            // Not a quoted value: go on after its first character (a
            // character, not a byte: the text may be any UTF-8).
            let mut next = after.chars();
            next.next();
            rest = next.as_str();
            continue;
        };
        // STIX escapes a quote as \\' inside a string.
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = body.len();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        value.push(next);
                    }
                }
                '\'' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((path, value));
        rest = &body[end.min(body.len())..];
    }
    out
}

fn stix_kind(path: &str) -> Option<Kind> {
    let p = path.to_ascii_lowercase();
    if p.starts_with("ipv4-addr:value") || p.starts_with("ipv6-addr:value") {
        Some(Kind::Ip)
    } else if p.starts_with("domain-name:value") {
        Some(Kind::Domain)
    } else if p.starts_with("url:value") {
        Some(Kind::Url)
    } else if p.starts_with("file:hashes") {
        Some(Kind::FileHash)
    } else {
        None
    }
}

/// Parses the `indicator` objects of a STIX 2.1 bundle. Returns the
/// indicators and how many STIX indicators had nothing supported.
pub fn parse_stix(text: &str) -> Result<(Vec<Indicator>, usize)> {
    let v: Value = serde_json::from_str(text).map_err(|e| Error::Invalid(format!("not JSON: {e}")))?;
    if v.get("type").and_then(Value::as_str) != Some("bundle") {
        return Err(Error::Invalid(
            "a STIX 2.1 import is a bundle (\"type\": \"bundle\")".into(),
        ));
    }
    let objects = v
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Invalid("the bundle has no objects".into()))?;
    let (mut out, mut skipped) = (Vec::new(), 0);
    for (n, o) in objects.iter().enumerate() {
        if o.get("type").and_then(Value::as_str) != Some("indicator") {
            continue;
        }
        let at = format!("object {n}");
        let pattern = o
            .get("pattern")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Invalid(format!("{at}: an indicator without a pattern")))?;
        if o.get("pattern_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "stix")
        {
            skipped += 1;
            continue;
        }
        let desc = o
            .get("name")
            .or_else(|| o.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let found: Vec<Indicator> = comparisons(pattern)
            .into_iter()
            .filter_map(|(path, value)| stix_kind(&path).map(|k| (k, value)))
            .map(|(k, value)| indicator(k, &value, desc.clone(), &at))
            .collect::<Result<_>>()?;
        if found.is_empty() {
            skipped += 1;
        }
        out.extend(found);
    }
    Ok((out, skipped))
}

/// Imports `format` (`csv` or `stix`) into the tenant's list. Audited.
pub async fn import(
    tx: &TenantTx,
    clock: &dyn Clock,
    actor: &Actor,
    format: &str,
    text: &str,
) -> Result<Imported> {
    let (items, skipped) = match format {
        "csv" => (parse_csv(text)?, 0),
        "stix" => parse_stix(text)?,
        _ => return Err(Error::Invalid("format must be csv or stix".into())),
    };
    if items.len() > MAX_IMPORT {
        return Err(Error::Invalid(format!(
            "at most {MAX_IMPORT} indicators per import"
        )));
    }
    let now = clock.now();
    let mut r = Imported {
        skipped,
        ..Imported::default()
    };
    for i in items {
        let res = ioc::Entity::insert(ioc::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tx.tenant().0),
            kind: Set(i.kind.as_str().to_owned()),
            value: Set(i.value),
            source: Set(format.to_owned()),
            description: Set(i.description),
            created_at: Set(now),
            created_by: Set(actor.label.clone()),
        })
        .on_conflict(
            OnConflict::columns([ioc::Column::TenantId, ioc::Column::Kind, ioc::Column::Value])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&**tx)
        .await?;
        if res > 0 {
            r.added += 1;
        } else {
            r.duplicates += 1;
        }
    }
    audit::record(
        tx,
        clock,
        actor,
        Event {
            action: "ioc.import",
            target: format!("tenant:{}", tx.tenant()),
            summary: json!({"format": format, "result": r}),
        },
    )
    .await?;
    Ok(r)
}

pub async fn list(tx: &TenantTx, limit: u64) -> Result<Vec<ioc::Model>> {
    Ok(ioc::Entity::find()
        .filter(ioc::Column::TenantId.eq(tx.tenant().0))
        .order_by_asc(ioc::Column::Kind)
        .order_by_asc(ioc::Column::Value)
        .limit(limit)
        .all(&**tx)
        .await?)
}

/// One signal: an entity of a case's alert that is on the indicator list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = IndicatorMatch)]
pub struct Signal {
    pub alert_id: Uuid,
    pub kind: String,
    pub value: String,
    /// Where in the alert the entity is (the evidence).
    pub pointer: String,
    pub source: String,
    pub description: Option<String>,
}

/// The IOC matches among a case's alerts.
pub async fn signals(tx: &TenantTx, case_id: Uuid) -> Result<Vec<Signal>> {
    crate::engine::cases::get(tx, case_id).await?;
    let alerts: Vec<Uuid> = case_alert::Entity::find()
        .filter(case_alert::Column::TenantId.eq(tx.tenant().0))
        .filter(case_alert::Column::CaseId.eq(case_id))
        .all(&**tx)
        .await?
        .into_iter()
        .map(|l| l.alert_id)
        .collect();
    let obs = observable::Entity::find()
        .filter(observable::Column::TenantId.eq(tx.tenant().0))
        .filter(observable::Column::AlertId.is_in(alerts))
        .filter(observable::Column::Kind.is_in(["ip", "domain", "url", "file_hash"]))
        .all(&**tx)
        .await?;
    let mut out = Vec::new();
    for chunk in obs.chunks(200) {
        let values: Vec<String> = chunk.iter().map(|o| o.value.clone()).collect();
        let hits = ioc::Entity::find()
            .filter(ioc::Column::TenantId.eq(tx.tenant().0))
            .filter(ioc::Column::Value.is_in(values))
            .all(&**tx)
            .await?;
        for o in chunk {
            if let Some(h) = hits.iter().find(|h| h.kind == o.kind && h.value == o.value) {
                out.push(Signal {
                    alert_id: o.alert_id,
                    kind: o.kind.clone(),
                    value: o.value.clone(),
                    pointer: o.pointer.clone(),
                    source: h.source.clone(),
                    description: h.description.clone(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `iocs` fuzz target: an unquoted value starting with a
    /// multi-byte character panicked (a byte slice inside a character).
    #[test]
    fn unquoted_multibyte_values_do_not_panic() {
        let got = comparisons("[domain-name:value = \u{65e}vil.example'] OR [ipv4-addr:value = '10.0.0.1']");
        assert!(got.iter().any(|(_, v)| v == "10.0.0.1"), "{got:?}");
    }

    #[test]
    fn csv_lines() {
        let got = parse_csv("kind,value,description\nip,203.0.113[.]9,C2\n\n# note\nfile_hash,9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\ndomain,Evil.Example.\n").unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].kind, got[0].value.as_str(), got[0].description.as_deref()),
            (Kind::Ip, "203.0.113.9", Some("C2"))
        );
        assert!(got[1].value.starts_with("9f86"));
        assert_eq!(got[2].value, "evil.example");
        assert!(
            parse_csv("ip,999.1.1.1")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        assert!(
            parse_csv("ip,1.2.3.4\nplanet,mars")
                .unwrap_err()
                .to_string()
                .contains("line 2: unknown kind")
        );
        assert!(
            parse_csv("host,ws-1")
                .unwrap_err()
                .to_string()
                .contains("indicators are")
        );
        assert!(parse_csv("ip").is_err());
    }

    /// What a hand split got wrong: quotes kept, a quoted comma breaking a
    /// row; CRLF and a byte-order mark from a spreadsheet's export.
    #[test]
    fn csv_is_parsed_as_csv() {
        let got = parse_csv(
            "\u{feff}kind,value,description\r\n\"ip\",\"203.0.113.9\",\"C2, seen twice \"\"in the wild\"\"\"\r\n\
             domain,evil.example,\"two\nlines\"\r\n",
        )
        .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].value, "203.0.113.9");
        assert_eq!(
            got[0].description.as_deref(),
            Some("C2, seen twice \"in the wild\"")
        );
        assert_eq!(got[1].description.as_deref(), Some("two lines"));
        let e = parse_csv("ip,1.2.3.4,a,b").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("4 columns"), "{e}");
        let e = parse_csv("ip,1.2.3.4\nip,\"unterminated")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = parse_csv("ip,1.2.3.\u{0}4").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn stix_patterns() {
        let bundle = r#"{"type": "bundle", "id": "bundle--1", "objects": [
          {"type": "indicator", "spec_version": "2.1", "name": "C2", "pattern_type": "stix",
           "pattern": "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'c2.evil.example']"},
          {"type": "indicator", "pattern_type": "stix", "pattern": "[file:hashes.'SHA-256' = 'AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12']"},
          {"type": "indicator", "pattern_type": "stix", "pattern": "[url:value = 'http://x.example/it\\'s']"},
          {"type": "indicator", "pattern_type": "stix", "pattern": "[process:name = 'evil.exe']"},
          {"type": "indicator", "pattern_type": "sigma", "pattern": "title: x"},
          {"type": "malware", "name": "not an indicator"}
        ]}"#;
        let (got, skipped) = parse_stix(bundle).unwrap();
        let pairs: Vec<_> = got.iter().map(|i| (i.kind, i.value.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (Kind::Ip, "198.51.100.7"),
                (Kind::Domain, "c2.evil.example"),
                (
                    Kind::FileHash,
                    "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
                ),
                (Kind::Url, "http://x.example/it's"),
            ]
        );
        assert_eq!(skipped, 2);
        assert!(parse_stix(r#"{"type": "indicator"}"#).is_err());
        assert!(parse_stix("{").is_err());
        assert!(
            parse_stix(
                r#"{"type":"bundle","objects":[{"type":"indicator","pattern":"[ipv4-addr:value = 'nope']"}]}"#
            )
            .is_err()
        );
    }
}
