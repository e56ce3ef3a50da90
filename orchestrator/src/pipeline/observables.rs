//! Observables: the entities an alert names (host, user, IP, domain, URL,
//! file hash, process, e-mail), each normalised (case, canonical IP form,
//! refanged `hxxp` / `[.]`) and each keeping its evidence pointer — the RFC
//! 6901 JSON pointer of the exact field it came from.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Host,
    User,
    Ip,
    Domain,
    Url,
    FileHash,
    Process,
    Email,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::User => "user",
            Kind::Ip => "ip",
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::FileHash => "file_hash",
            Kind::Process => "process",
            Kind::Email => "email",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        [
            Kind::Host,
            Kind::User,
            Kind::Ip,
            Kind::Domain,
            Kind::Url,
            Kind::FileHash,
            Kind::Process,
            Kind::Email,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            crate::Error::Invalid(format!(
                "unknown entity kind `{s}` (host, user, ip, domain, url, file_hash, process, email)"
            ))
        })
    }
}

/// A value typed by a person (an ignore-list entry, an IOC) in the form
/// extraction gives it, so the two compare equal; `None` if it is not a
/// valid value of that kind.
pub fn normalize(kind: Kind, raw: &str) -> Option<String> {
    let s = refang(raw);
    if s.is_empty() || s.len() > 2048 {
        return None;
    }
    let lower = s.to_lowercase();
    match kind {
        Kind::Ip => s.parse::<IpAddr>().ok().map(|ip| ip.to_string()),
        Kind::Url => (lower.starts_with("http://") || lower.starts_with("https://")).then_some(s),
        Kind::Email => email(&s),
        Kind::FileHash => is_hex_hash(&s).then_some(lower),
        Kind::Domain => Some(lower.trim_end_matches('.').to_owned())
            .filter(|d| d.contains('.') && !d.chars().any(|c| c.is_whitespace() || c.is_control())),
        Kind::Process => Some(s),
        Kind::Host | Kind::User => Some(lower),
    }
}

/// One observable with the pointer to the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observable {
    pub kind: Kind,
    pub value: String,
    pub pointer: String,
}

/// Undoes the usual defanging: `hxxp`, `[.]`, `(.)`, `[:]`, `[@]`. Applied
/// until nothing changes (a replacement can form a new defanged sequence,
/// as `[[.]]` does), so refanging a refanged value changes nothing.
pub fn refang(s: &str) -> String {
    let mut out = s.trim().to_owned();
    for _ in 0..=s.len() {
        let mut next = out
            .replace("[.]", ".")
            .replace("(.)", ".")
            .replace("[:]", ":")
            .replace("[@]", "@");
        // `hxxp` in any case (`HxXp://` lowercases to `hxxp://`).
        for (from, to) in [("hxxps://", "https://"), ("hxxp://", "http://")] {
            if next
                .get(..from.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(from))
            {
                next = format!("{to}{}", &next[from.len()..]);
            }
        }
        let next = next.trim().to_owned();
        // Every round shortens the text or rewrites its prefix (once): the
        // fixpoint comes within len + 1 rounds.
        if next == out {
            break;
        }
        out = next;
    }
    out
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn is_hex_hash(s: &str) -> bool {
    matches!(s.len(), 32 | 40 | 64 | 128) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn email(s: &str) -> Option<String> {
    let (local, domain) = s.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == '/')
        && !domain.contains('@');
    ok.then(|| s.to_lowercase())
}

fn domain_of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host
    } else {
        host.split(':').next()?
    };
    (!host.is_empty() && host.parse::<IpAddr>().is_err() && !host.starts_with('['))
        .then(|| host.trim_end_matches('.').to_lowercase())
}

/// The last key of a pointer and its parent, lower-cased (e.g. `/host/name`
/// → ("host", "name")).
fn keys(pointer: &str) -> (String, String) {
    let mut parts = pointer.rsplit('/');
    let last = parts.next().unwrap_or_default().to_lowercase();
    let parent = parts.next().unwrap_or_default().to_lowercase();
    (parent, last)
}

fn classify(pointer: &str, raw: &str, out: &mut Vec<Observable>) {
    let s = refang(raw);
    if s.is_empty() || s.len() > 2048 {
        return;
    }
    let (parent, key) = keys(pointer);
    let push = |out: &mut Vec<Observable>, kind, value: String| {
        out.push(Observable {
            kind,
            value,
            pointer: pointer.to_owned(),
        })
    };
    if let Ok(ip) = s.parse::<IpAddr>() {
        return push(out, Kind::Ip, ip.to_string());
    }
    let lower = s.to_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        if let Some(d) = domain_of_url(&s) {
            push(out, Kind::Domain, d);
        }
        return push(out, Kind::Url, s);
    }
    if let Some(e) = email(&s) {
        return push(out, Kind::Email, e);
    }
    if is_hex_hash(&s)
        && (key.contains("hash")
            || key.contains("sha")
            || key.contains("md5")
            || parent == "hash"
            || parent == "hashes")
    {
        return push(out, Kind::FileHash, lower);
    }
    let host_keys = [
        "hostname",
        "host_name",
        "computer_name",
        "device_name",
        "computername",
    ];
    if host_keys.contains(&key.as_str()) || (key == "name" && (parent == "host" || parent == "device")) {
        return push(out, Kind::Host, lower);
    }
    let user_keys = ["user_name", "username", "account_name", "user"];
    if user_keys.contains(&key.as_str()) || (key == "name" && parent == "user") {
        return push(out, Kind::User, lower);
    }
    let process_keys = [
        "filename",
        "process_name",
        "image",
        "executable",
        "cmdline",
        "command_line",
    ];
    if process_keys.contains(&key.as_str())
        || (matches!(key.as_str(), "name" | "executable") && parent == "process")
    {
        return push(out, Kind::Process, s);
    }
    let domain_keys = ["domain", "fqdn", "query_name"];
    if (domain_keys.contains(&key.as_str()) || (key == "name" && parent == "question"))
        && lower.contains('.')
        && !lower.contains(' ')
    {
        push(out, Kind::Domain, lower.trim_end_matches('.').to_owned());
    }
}

fn walk(v: &Value, pointer: &mut String, out: &mut Vec<Observable>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape(k));
                walk(x, pointer, out, depth + 1);
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(x, pointer, out, depth + 1);
                pointer.truncate(len);
            }
        }
        Value::String(s) => classify(pointer, s, out),
        _ => {}
    }
}

/// Every observable of an alert, in document order, with its pointer.
pub fn extract(alert: &Value) -> Vec<Observable> {
    let mut out = Vec::new();
    walk(alert, &mut String::new(), &mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn find<'a>(obs: &'a [Observable], kind: Kind, value: &str) -> &'a Observable {
        obs.iter()
            .find(|o| o.kind == kind && o.value == value)
            .unwrap_or_else(|| panic!("{kind:?} {value} in {obs:?}"))
    }

    /// Found by the `observables` fuzz target: normalizing twice must
    /// change nothing.
    #[test]
    fn normalizing_is_idempotent_on_fuzzer_finds() {
        assert_eq!(refang("[[.]]"), ".", "a replacement formed a new `[.]`");
        assert_eq!(
            normalize(Kind::Domain, "evil[[.]]com").as_deref(),
            Some("evil.com")
        );
        assert_eq!(
            normalize(Kind::Domain, "\nv\n\u{4}.\n."),
            None,
            "control characters"
        );
        for (k, raw) in [
            (Kind::Domain, " Evil(.)Example[.]com. "),
            (Kind::Url, "hxxps://evil[.]com/x"),
            (Kind::Host, " [[.].] "),
            (Kind::Process, "a[([.].)]"),
            (Kind::User, "HxXpS://x"),
            (Kind::Ip, "10[.]0[.]0[.]7"),
        ] {
            let once = normalize(k, raw).unwrap();
            assert_eq!(normalize(k, &once).as_deref(), Some(once.as_str()), "{raw}");
        }
    }

    #[test]
    fn extracts_across_formats_with_pointers() {
        let cs = json!({"composite_id": "x", "filename": "updsvc.exe", "sha256": "9F2C1C5C3C0D8A1B7E6F4A3D2C1B0A99887766554433221100FFEEDDCCBBAA99",
                        "device": {"hostname": "FIN-WS-042", "local_ip": "10.20.4.42"}, "user_name": "M.Rossi"});
        let o = extract(&cs);
        assert_eq!(find(&o, Kind::Host, "fin-ws-042").pointer, "/device/hostname");
        assert_eq!(find(&o, Kind::Ip, "10.20.4.42").pointer, "/device/local_ip");
        assert_eq!(find(&o, Kind::User, "m.rossi").pointer, "/user_name");
        assert_eq!(find(&o, Kind::Process, "updsvc.exe").pointer, "/filename");
        assert_eq!(
            find(
                &o,
                Kind::FileHash,
                "9f2c1c5c3c0d8a1b7e6f4a3d2c1b0a99887766554433221100ffeeddccbbaa99"
            )
            .pointer,
            "/sha256"
        );

        let ecs = json!({"user": {"name": "j.doe", "email": "J.Doe@Corp.Example"}, "source": {"ip": "203.0.113.077"},
                         "url": {"full": "hxxps://evil[.]example/payload?x=1"}, "host": {"name": "LAPTOP-7"}, "dns": {"question": {"name": "c2.Evil.example."}}});
        let o = extract(&ecs);
        assert_eq!(find(&o, Kind::User, "j.doe").pointer, "/user/name");
        assert_eq!(find(&o, Kind::Email, "j.doe@corp.example").pointer, "/user/email");
        assert_eq!(
            find(&o, Kind::Url, "https://evil.example/payload?x=1").pointer,
            "/url/full"
        );
        assert_eq!(find(&o, Kind::Domain, "evil.example").pointer, "/url/full");
        assert_eq!(
            find(&o, Kind::Domain, "c2.evil.example").pointer,
            "/dns/question/name"
        );
        assert_eq!(find(&o, Kind::Host, "laptop-7").pointer, "/host/name");
        assert!(
            !o.iter().any(|x| x.kind == Kind::Ip),
            "203.0.113.077 is not a canonical IP"
        );

        let ocsf = json!({"dst_endpoint": {"ip": "2001:DB8::0:1"}, "observables": [{"name": "a/b~c", "value": "10[.]0[.]0[.]1"}]});
        let o = extract(&ocsf);
        assert_eq!(find(&o, Kind::Ip, "2001:db8::1").pointer, "/dst_endpoint/ip");
        assert_eq!(find(&o, Kind::Ip, "10.0.0.1").pointer, "/observables/0/value");
    }

    #[test]
    fn refangs() {
        assert_eq!(refang("hxxp://a[.]b(.)c[:]8080"), "http://a.b.c:8080");
        assert_eq!(refang(" x[@]y[.]z "), "x@y.z");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z0-9.:@/\\[\\]()_-]{0,40}".prop_map(Value::from),
            proptest::sample::select(vec!["10.0.0.1", "hxxp://a[.]b/c", "x@y.io", "FIN-WS-1"])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    proptest::sample::select(vec![
                        "host", "hostname", "name", "user", "ip", "url", "sha256", "a/b", "x~y", "process"
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..5,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Every pointer resolves in the alert to the string the observable
        /// came from; extraction never panics.
        #[test]
        fn pointers_resolve_to_their_evidence(v in arb_json()) {
            for o in extract(&v) {
                let at = v.pointer(&o.pointer);
                prop_assert!(at.is_some(), "{} does not resolve", o.pointer);
                let s = at.and_then(Value::as_str).unwrap_or_default();
                let r = refang(s).to_lowercase();
                prop_assert!(!s.is_empty());
                prop_assert!(r.contains(&o.value.to_lowercase()) || o.kind == Kind::Ip || o.kind == Kind::Domain,
                    "{:?} {} not in {}", o.kind, o.value, s);
            }
        }
    }
}
