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
