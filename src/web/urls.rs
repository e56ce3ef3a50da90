//! The public addresses Vigil hands to identity providers and people, built
//! from `public_url` (one place, so the API that shows them and the flows
//! that use them cannot disagree).

use uuid::Uuid;

use crate::web::AppState;

fn base(s: &AppState) -> &str {
    s.public_url.trim_end_matches('/')
}

/// The OIDC redirect URI of a provider.
pub(crate) fn redirect_uri(s: &AppState, provider: Uuid) -> String {
    format!("{}/sso/{provider}/callback", base(s))
}

/// Where a person starts a login with a provider.
pub(crate) fn login_url(s: &AppState, provider: Uuid) -> String {
    format!("{}/sso/{provider}/login", base(s))
}

/// The SAML service provider of a provider: entity id (= metadata URL) and ACS.
pub(crate) fn sp(s: &AppState, provider: Uuid) -> vigil_integrations::saml::Sp {
    vigil_integrations::saml::Sp {
        entity_id: format!("{}/sso/{provider}/metadata", base(s)),
        acs_url: format!("{}/sso/{provider}/acs", base(s)),
    }
}

/// `s` as one query-string value (RFC 3986: unreserved characters and `/`
/// kept, everything else percent-encoded).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a person may be sent back to after signing in: a path of this
/// site only (never another origin: `//host`, `/\host`, a scheme, control
/// characters), and not the sign-in pages themselves.
pub(crate) fn local_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && !next.starts_with("/login")
        && !next.starts_with("/logout")
        && next.len() <= 2048;
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_next("/cases?state=open"), Some("/cases?state=open"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example",
            "cases",
            "/a\nb",
            "/a\\b",
            "/login",
            "",
        ] {
            assert_eq!(local_next(bad), None, "{bad:?}");
        }
        assert_eq!(encode("/cases?q=a b&x=é"), "/cases%3Fq%3Da%20b%26x%3D%C3%A9");
    }
}
