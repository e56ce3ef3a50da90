//! Observables: the entities an alert names (host, user, IP, domain, URL,
//! file hash, process, e-mail), each normalised (case, canonical IP form,
//! refanged `hxxp` / `[.]`) and each keeping its evidence pointer — the RFC
//! 6901 JSON pointer of the exact field it came from.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = EntityKind)]
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
        Kind::Host => Some(host_name(&lower)).filter(|h| !h.is_empty()),
        Kind::User => Some(lower),
    }
}

/// A host by its name, without its DNS domain: `ws042.corp.example` and
/// `WS042` are one machine (Falcon reports the short name, the directory
/// the FQDN). Lower-cased input.
pub fn host_name(lower: &str) -> String {
    // Trailing dots and spaces go together ("a. ." is "a"), and what is cut
    // off must not leave a space at the end (normalizing again would trim
    // it): the result is its own normal form.
    let s = lower.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    match s.split_once('.') {
        Some((first, rest))
            if !first.trim_end().is_empty() && rest.contains(|c: char| c.is_ascii_alphabetic()) =>
        {
            first.trim_end().to_owned()
        }
        _ => s.to_owned(),
    }
}

/// What an entity is to the alert that names it, read from the field it
/// came from (so it is never stored: the pointer says it). Correlation
/// weighs an entity by its kind *and* its role: the address a device
/// reports for itself says "same machine"; the NAT address every agent of
/// an office reports says nothing; a console link names the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = EntityRole)]
pub enum Role {
    /// The alert's own machine (its name, its own address).
    Device,
    /// An external / NAT address a device reports (shared by an office).
    Nat,
    /// The source side of an activity (a client, the account that acted).
    Source,
    /// The destination side (a server, a contacted domain, a target).
    Destination,
    /// A person's account.
    Person,
    /// A service or machine account (`svc_*`, `HOST$`, `SYSTEM`).
    Service,
    /// A directory / machine / account domain (every account of a forest
    /// shares it).
    AccountDomain,
    /// Shared infrastructure named by the detection itself (a domain
    /// controller, the source's ISP).
    Infrastructure,
    /// A link to the vendor's console about this alert, and its domain.
    Reference,
    /// Anything else.
    Other,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Device,
        Role::Nat,
        Role::Source,
        Role::Destination,
        Role::Person,
        Role::Service,
        Role::AccountDomain,
        Role::Infrastructure,
        Role::Reference,
        Role::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Device => "device",
            Role::Nat => "nat",
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Person => "person",
            Role::Service => "service",
            Role::AccountDomain => "account_domain",
            Role::Infrastructure => "infrastructure",
            Role::Reference => "reference",
            Role::Other => "other",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| crate::Error::Invalid(format!("unknown entity role `{s}`")))
    }
}

/// One observable with the pointer to the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Observable {
    pub kind: Kind,
    pub value: String,
    pub pointer: String,
    /// Read from the pointer ([`role`]).
    pub role: Role,
}

impl Observable {
    /// An observable as stored (kind, value, pointer); its role is read again.
    pub fn stored(kind: Kind, value: String, pointer: String) -> Self {
        let role = role(kind, &pointer, &value);
        Observable {
            kind,
            value,
            pointer,
            role,
        }
    }
}

/// The path's keys, lower-cased and unescaped, array indices left out
/// (`/evidences/0/file/hashes/1/value` → evidences, file, hashes, value).
fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
        .map(|s| s.replace("~1", "/").replace("~0", "~").to_lowercase())
        .collect()
}

/// A service or machine account by its name.
pub fn is_service_account(name: &str) -> bool {
    let n = name.to_lowercase();
    let local = n.rsplit(['\\', '/']).next().unwrap_or(&n);
    let local = local.split('@').next().unwrap_or(local);
    local.ends_with('$')
        || ["svc", "srv_", "srv-", "sa_", "sa-", "svc_", "svc-", "svc."]
            .iter()
            .any(|p| local.starts_with(p))
        || [
            "system",
            "localsystem",
            "local service",
            "network service",
            "root",
            "daemon",
            "nobody",
            "www-data",
            "anonymous logon",
        ]
        .contains(&local)
}

/// What an entity is to its alert, from the field it came from.
pub fn role(kind: Kind, pointer: &str, value: &str) -> Role {
    let segs = segments(pointer);
    let key = segs.last().map(String::as_str).unwrap_or_default();
    let any = |f: &dyn Fn(&str) -> bool| segs.iter().any(|s| f(s));
    let is_src = |s: &str| {
        s.starts_with("src")
            || s.starts_with("source")
            || s.starts_with("client")
            || s == "actor"
            || s == "initiator"
    };
    let is_dst = |s: &str| {
        s.starts_with("dst")
            || s.starts_with("dest")
            || s.starts_with("remote")
            || s.starts_with("target")
            || s.starts_with("server")
            || s == "network_accesses"
            || s == "url"
            || s == "dns"
            || s == "question"
            || s == "query_name"
    };
    if any(&|s| s.ends_with("_link") || s == "permalink" || s == "href" || s.contains("console")) {
        return Role::Reference;
    }
    match kind {
        Kind::Ip => {
            if any(&|s| {
                s.contains("external")
                    || s == "nat"
                    || s.starts_with("nat_")
                    || s.ends_with("_nat")
                    || s.contains("public_ip")
            }) {
                Role::Nat
            } else if any(&is_src) {
                Role::Source
            } else if any(&is_dst) {
                Role::Destination
            } else if any(&|s| {
                s == "device" || s == "host" || s == "agent" || s == "local_ip" || s == "observer"
            }) {
                Role::Device
            } else {
                Role::Other
            }
        }
        Kind::Domain => {
            if any(&|s| s.contains("isp") || s.contains("domain_controller")) {
                Role::Infrastructure
            } else if key == "machine_domain"
                || key.ends_with("account_domain")
                || key == "logon_domain"
                || key == "user_domain"
                || (key == "domain"
                    && segs.len() >= 2
                    && matches!(
                        segs[segs.len() - 2].as_str(),
                        "user" | "hostinfo" | "account" | "host" | "device" | "agent" | "group"
                    ))
            {
                Role::AccountDomain
            } else if any(&is_dst) || pointer_is_url_field(&segs) {
                Role::Destination
            } else {
                Role::Other
            }
        }
        Kind::Host => {
            if any(&|s| s.contains("domain_controller")) {
                Role::Infrastructure
            } else if any(&is_src) {
                Role::Source
            } else if any(&is_dst) {
                Role::Destination
            } else {
                Role::Device
            }
        }
        Kind::User | Kind::Email => {
            if is_service_account(value) || any(&|s| s.contains("service_account")) {
                Role::Service
            } else {
                Role::Person
            }
        }
        Kind::Url => {
            if any(&is_src) {
                Role::Source
            } else {
                Role::Destination
            }
        }
        Kind::FileHash | Kind::Process => Role::Device,
    }
}

fn pointer_is_url_field(segs: &[String]) -> bool {
    segs.iter()
        .any(|s| s == "url" || s == "uri" || s == "full" || s == "url_string")
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

/// The last key of a pointer and its parent, lower-cased, array indices
/// skipped (e.g. `/host/name` → ("host", "name"); `/hashes/0/value` →
/// ("hashes", "value")).
fn keys(pointer: &str) -> (String, String) {
    let mut segs = segments(pointer);
    let last = segs.pop().unwrap_or_default();
    let parent = segs.pop().unwrap_or_default();
    (parent, last)
}

fn classify(pointer: &str, raw: &str, out: &mut Vec<Observable>) {
    let s = refang(raw);
    if s.is_empty() || s.len() > 2048 {
        return;
    }
    let (parent, key) = keys(pointer);
    let push = |out: &mut Vec<Observable>, kind, value: String| {
        out.push(Observable::stored(kind, value, pointer.to_owned()))
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
            || key == "ioc_value"
            || parent == "hash"
            || parent == "hashes")
    {
        // An all-zero hash is a vendor's "none" (Falcon's `sha1`), not a file.
        if s.bytes().all(|b| b == b'0') {
            return;
        }
        return push(out, Kind::FileHash, lower);
    }
    let host_keys = [
        "hostname",
        "host_name",
        "computer_name",
        "device_name",
        "computername",
        "hosts",
    ];
    if host_keys.contains(&key.as_str())
        || key.ends_with("_host_name")
        || key.ends_with("_hostname")
        || (key == "name" && (parent == "host" || parent == "device"))
        // Graylog: an event's and a message's `source` is the sending host.
        || (key == "source" && (parent == "event" || parent == "message" || parent.is_empty()))
    {
        let h = host_name(&lower);
        if !h.is_empty() {
            push(out, Kind::Host, h);
        }
        return;
    }
    let user_keys = [
        "user_name",
        "username",
        "account_name",
        "user",
        "sam_account_name",
    ];
    if user_keys.contains(&key.as_str())
        || key.ends_with("_account_name")
        || (key == "name" && (parent == "user" || parent == "account"))
    {
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
    let domain_keys = ["domain", "fqdn", "query_name", "machine_domain", "logon_domain"];
    if (domain_keys.contains(&key.as_str())
        || key.ends_with("_domain")
        || (key == "name" && parent == "question"))
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

/// Values per kind, in first-seen order, each once.
pub fn by_kind<'a>(entities: impl Iterator<Item = (Kind, &'a str)>) -> Vec<(Kind, Vec<&'a str>)> {
    let mut out: Vec<(Kind, Vec<&'a str>)> = Vec::new();
    let mut seen: std::collections::HashSet<(Kind, &'a str)> = std::collections::HashSet::new();
    for (k, v) in entities {
        if !seen.insert((k, v)) {
            continue;
        }
        match out.iter_mut().find(|(ok, _)| *ok == k) {
            Some((_, vs)) => vs.push(v),
            None => out.push((k, vec![v])),
        }
    }
    out
}

/// Values per lookup statement (well under either backend's limit of bound
/// parameters).
pub const LOOKUP_CHUNK: usize = 500;

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

    /// Field → entity kind → role, per format and product, on alerts in
    /// the layouts the vendors publish (Falcon Alerts API records as in
    /// Elastic's CrowdStrike pipeline tests: endpoint, identity and
    /// on-demand-scan detections; OCSF 1.x Detection Finding with
    /// `evidences`, `resources`, `actor`, `src/dst_endpoint`; ECS;
    /// Graylog events). Values are this test's own.
    #[test]
    fn fields_become_entities_with_roles() {
        use Kind::*;
        use Role as R;
        type Want<'a> = Vec<(&'a str, Kind, &'a str, Role)>;
        let cases: Vec<(&str, Value, Want<'_>, Vec<&str>)> = vec![
            (
                "falcon endpoint (epp)",
                json!({"composite_id": "c:ind:1", "product": "epp", "timestamp": "2026-11-03T18:00:22.328Z",
                       "device": {"device_id": "2ce4", "hostname": "ABC709-1175", "local_ip": "10.20.4.42", "external_ip": "81.2.69.142",
                                  "machine_domain": "ABC.LOCAL", "hostinfo": {"domain": "ABC.LOCAL"}},
                       "user_name": "mohit.jha", "filename": "openvpn-install.exe", "cmdline": "openvpn-install.exe /S",
                       "sha256": "b26a6791b72753d2317efd5e1363d93fdd33e611c8b9e08a3b24ea4d755b81fd",
                       "md5": "cdf9cfebb400ce89d5b6032bfcdc693b", "sha1": "0000000000000000000000000000000000000000",
                       "parent_details": {"filename": "explorer.exe", "user_name": "yuvraj.m", "sha256": "0b25d56bd2b4d8a6df45beff7be165117fbf7ba6ba2c07744f039143866335e4"},
                       "network_accesses": [{"remote_address": "52.96.7.1", "remote_port": "443", "local_address": "10.20.4.42"}],
                       "quarantined_files": [{"sha256": "b26a6791b72753d2317efd5e1363d93fdd33e611c8b9e08a3b24ea4d755b81fd"}],
                       "falcon_host_link": "https://falcon.us-2.crowdstrike.com/activity-v2/detections/dhjffg:ind:2ce4"}),
                vec![
                    ("/device/hostname", Host, "abc709-1175", R::Device),
                    ("/device/local_ip", Ip, "10.20.4.42", R::Device),
                    ("/device/external_ip", Ip, "81.2.69.142", R::Nat),
                    ("/device/machine_domain", Domain, "abc.local", R::AccountDomain),
                    ("/device/hostinfo/domain", Domain, "abc.local", R::AccountDomain),
                    ("/user_name", User, "mohit.jha", R::Person),
                    ("/parent_details/user_name", User, "yuvraj.m", R::Person),
                    (
                        "/sha256",
                        FileHash,
                        "b26a6791b72753d2317efd5e1363d93fdd33e611c8b9e08a3b24ea4d755b81fd",
                        R::Device,
                    ),
                    ("/md5", FileHash, "cdf9cfebb400ce89d5b6032bfcdc693b", R::Device),
                    (
                        "/parent_details/sha256",
                        FileHash,
                        "0b25d56bd2b4d8a6df45beff7be165117fbf7ba6ba2c07744f039143866335e4",
                        R::Device,
                    ),
                    (
                        "/quarantined_files/0/sha256",
                        FileHash,
                        "b26a6791b72753d2317efd5e1363d93fdd33e611c8b9e08a3b24ea4d755b81fd",
                        R::Device,
                    ),
                    (
                        "/network_accesses/0/remote_address",
                        Ip,
                        "52.96.7.1",
                        R::Destination,
                    ),
                    ("/filename", Process, "openvpn-install.exe", R::Device),
                    (
                        "/falcon_host_link",
                        Domain,
                        "falcon.us-2.crowdstrike.com",
                        R::Reference,
                    ),
                ],
                vec!["/sha1"],
            ),
            (
                "falcon identity (idp)",
                json!({"composite_id": "c:ind:2", "product": "idp", "timestamp": "2024-08-19T18:44:01.1Z",
                       "source_account_name": "admin.example", "source_account_upn": "admin.abcdef@example.com",
                       "source_account_domain": "NET.example.com", "source_account_sam_account_name": "admin.abcdef",
                       "source_endpoint_host_name": "ABDC454.net.example.com", "source_endpoint_ip_address": "81.2.69.144",
                       "target_account_name": "HFJFJFFFFFFF$", "target_endpoint_host_name": "GH787.net.example.com",
                       "target_domain_controller_host_name": "APINTAL19DC01", "source_ip_isp_domain": "sioru.com"}),
                vec![
                    ("/source_account_name", User, "admin.example", R::Person),
                    (
                        "/source_account_upn",
                        Email,
                        "admin.abcdef@example.com",
                        R::Person,
                    ),
                    (
                        "/source_account_domain",
                        Domain,
                        "net.example.com",
                        R::AccountDomain,
                    ),
                    ("/source_endpoint_host_name", Host, "abdc454", R::Source),
                    ("/source_endpoint_ip_address", Ip, "81.2.69.144", R::Source),
                    ("/target_account_name", User, "hfjfjfffffff$", R::Service),
                    ("/target_endpoint_host_name", Host, "gh787", R::Destination),
                    (
                        "/target_domain_controller_host_name",
                        Host,
                        "apintal19dc01",
                        R::Infrastructure,
                    ),
                    ("/source_ip_isp_domain", Domain, "sioru.com", R::Infrastructure),
                ],
                vec![],
            ),
            (
                "falcon on-demand scan (ods)",
                json!({"composite_id": "c:ods:3", "product": "epp", "device": {"hostname": "INCHAKLSP049", "external_ip": "1.128.0.9"},
                       "associated_files": [{"filepath": "E:\\setup.exe", "sha256": "9f2c1c5c3c0d8a1b7e6f4a3d2c1b0a99887766554433221100ffeeddccbbaa99"}]}),
                vec![
                    ("/device/hostname", Host, "inchaklsp049", R::Device),
                    ("/device/external_ip", Ip, "1.128.0.9", R::Nat),
                    (
                        "/associated_files/0/sha256",
                        FileHash,
                        "9f2c1c5c3c0d8a1b7e6f4a3d2c1b0a99887766554433221100ffeeddccbbaa99",
                        R::Device,
                    ),
                ],
                vec![],
            ),
            (
                "OCSF Detection Finding",
                json!({"class_uid": 2004, "time": 1_795_000_000_000_i64,
                       "finding_info": {"uid": "f1", "title": "Credential dumping"},
                       "device": {"hostname": "fin-ws-042.corp.example", "ip": "10.1.2.3", "domain": "corp.example"},
                       "actor": {"user": {"name": "j.doe", "email_addr": "j.doe@corp.example"}},
                       "src_endpoint": {"ip": "203.0.113.9", "hostname": "kali"},
                       "dst_endpoint": {"ip": "10.1.2.4", "hostname": "dc02"},
                       "evidences": [
                           {"file": {"name": "mimikatz.exe", "hashes": [{"algorithm_id": 3, "value": "61c0810a23580cf492a6ba4f7654566108331e7a4134c968c2d6a05261b2d8a1"}]}},
                           {"process": {"name": "lsass.exe", "file": {"hashes": [{"algorithm_id": 1, "value": "d41d8cd98f00b204e9800998ecf8427e"}]}}},
                           {"url": {"url_string": "hxxp://c2[.]evil.example/beacon"}}
                       ],
                       "resources": [{"name": "fin-db-01", "type": "host", "hostname": "fin-db-01"}]}),
                vec![
                    ("/device/hostname", Host, "fin-ws-042", R::Device),
                    ("/device/ip", Ip, "10.1.2.3", R::Device),
                    ("/device/domain", Domain, "corp.example", R::AccountDomain),
                    ("/actor/user/name", User, "j.doe", R::Person),
                    ("/actor/user/email_addr", Email, "j.doe@corp.example", R::Person),
                    ("/src_endpoint/ip", Ip, "203.0.113.9", R::Source),
                    ("/src_endpoint/hostname", Host, "kali", R::Source),
                    ("/dst_endpoint/ip", Ip, "10.1.2.4", R::Destination),
                    ("/dst_endpoint/hostname", Host, "dc02", R::Destination),
                    (
                        "/evidences/0/file/hashes/0/value",
                        FileHash,
                        "61c0810a23580cf492a6ba4f7654566108331e7a4134c968c2d6a05261b2d8a1",
                        R::Device,
                    ),
                    (
                        "/evidences/1/process/file/hashes/0/value",
                        FileHash,
                        "d41d8cd98f00b204e9800998ecf8427e",
                        R::Device,
                    ),
                    ("/evidences/1/process/name", Process, "lsass.exe", R::Device),
                    (
                        "/evidences/2/url/url_string",
                        Url,
                        "http://c2.evil.example/beacon",
                        R::Destination,
                    ),
                    (
                        "/evidences/2/url/url_string",
                        Domain,
                        "c2.evil.example",
                        R::Destination,
                    ),
                    ("/resources/0/hostname", Host, "fin-db-01", R::Device),
                ],
                vec![],
            ),
            (
                "ECS",
                json!({"@timestamp": "2026-11-22T10:00:00Z", "event": {"kind": "alert"},
                       "host": {"name": "LAPTOP-7", "hostname": "laptop-7.corp.example", "ip": ["10.9.8.7"]},
                       "user": {"name": "svc_backup", "domain": "CORP"},
                       "source": {"ip": "10.9.8.7"}, "destination": {"ip": "198.51.100.20", "domain": "files.example.net"},
                       "file": {"hash": {"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}},
                       "process": {"name": "rclone.exe", "executable": "C:\\Temp\\rclone.exe"},
                       "url": {"full": "https://files.example.net/upload"},
                       "dns": {"question": {"name": "files.example.net"}},
                       "related": {"ip": ["10.9.8.7", "198.51.100.20"], "user": ["svc_backup"], "hosts": ["laptop-7"]}}),
                vec![
                    ("/host/name", Host, "laptop-7", R::Device),
                    ("/host/hostname", Host, "laptop-7", R::Device),
                    ("/host/ip/0", Ip, "10.9.8.7", R::Device),
                    ("/user/name", User, "svc_backup", R::Service),
                    ("/source/ip", Ip, "10.9.8.7", R::Source),
                    ("/destination/ip", Ip, "198.51.100.20", R::Destination),
                    ("/destination/domain", Domain, "files.example.net", R::Destination),
                    (
                        "/file/hash/sha256",
                        FileHash,
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                        R::Device,
                    ),
                    ("/process/name", Process, "rclone.exe", R::Device),
                    (
                        "/url/full",
                        Url,
                        "https://files.example.net/upload",
                        R::Destination,
                    ),
                    ("/dns/question/name", Domain, "files.example.net", R::Destination),
                    ("/related/ip/1", Ip, "198.51.100.20", R::Other),
                    ("/related/user/0", User, "svc_backup", R::Service),
                    ("/related/hosts/0", Host, "laptop-7", R::Device),
                ],
                vec!["/user/domain"],
            ),
            (
                "Graylog event",
                json!({"event": {"id": "01HX", "event_definition_id": "5f0c", "timestamp": "2026-11-22 10:00:00.000",
                                 "source": "graylog-node-1", "message": "Failed logins on web-01",
                                 "fields": {"hostname": "web-01", "src_ip": "203.0.113.50", "user": "root", "query_name": "bad.example"}},
                       "index_name": "gl-events_0"}),
                vec![
                    ("/event/source", Host, "graylog-node-1", R::Source),
                    ("/event/fields/hostname", Host, "web-01", R::Device),
                    ("/event/fields/src_ip", Ip, "203.0.113.50", R::Source),
                    ("/event/fields/user", User, "root", R::Service),
                    ("/event/fields/query_name", Domain, "bad.example", R::Destination),
                ],
                vec![],
            ),
        ];
        for (product, alert, want, absent) in cases {
            let got = extract(&alert);
            for (pointer, kind, value, role) in want {
                let o = got
                    .iter()
                    .find(|o| o.pointer == pointer && o.kind == kind)
                    .unwrap_or_else(|| panic!("{product}: no {kind:?} at {pointer} in {got:#?}"));
                assert_eq!((o.value.as_str(), o.role), (value, role), "{product}: {pointer}");
            }
            for pointer in absent {
                assert!(
                    !got.iter().any(|o| o.pointer == pointer),
                    "{product}: {pointer} is no entity"
                );
            }
        }
    }

    /// Found by reading the fuzz target's rule: a name of dots only has no
    /// host left once its domain is cut, and normalizing must stay idempotent.
    #[test]
    fn hosts_lose_their_domain_and_never_become_empty() {
        assert_eq!(
            normalize(Kind::Host, "WS042.corp.example.").as_deref(),
            Some("ws042")
        );
        assert_eq!(
            normalize(Kind::Host, "srv.42").as_deref(),
            Some("srv.42"),
            "no alphabetic domain: kept"
        );
        for raw in ["..", ".", " . ", "[.]"] {
            assert_eq!(normalize(Kind::Host, raw), None, "{raw:?}");
        }
        // Found by the fuzz target: a form feed before the cut, dots and
        // spaces at the end.
        for raw in [
            "h\u{3}Ei\u{7f}]$Et\u{c}.v",
            "ab\u{c}.",
            "a. .",
            "a \u{c}..",
            " .x",
            "x.y.",
            "İ.x",
        ] {
            let once = normalize(Kind::Host, raw).unwrap_or_default();
            assert_eq!(
                normalize(Kind::Host, &once).unwrap_or_default(),
                once,
                "{raw:?} → {once:?}"
            );
        }
        assert!(extract(&json!({"hostname": ".."})).is_empty());
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
