//! What every page shows around its content: who is signed in and in which
//! tenant, the navigation their role may use (and only that), Sign out, and
//! a banner while a kill switch is engaged. The guard resolves it once per
//! page request ([`resolve`]) and runs the handler inside [`scope`];
//! `base.html` reads it with [`current`], so a refusal page rendered
//! anywhere in the request carries it too.

use std::future::Future;

use vigil_orchestrator::Role;
use vigil_orchestrator::engine::kill;
use vigil_orchestrator::identity::{self, auth};

use crate::web::AppState;
use crate::web::auth::Principal;

tokio::task_local! {
    static CHROME: Chrome;
}

#[derive(Debug, Clone)]
pub struct Link {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in person's e-mail address.
    pub who: Option<String>,
    pub tenant: Option<String>,
    pub role: Option<&'static str>,
    pub csrf: String,
    pub links: Vec<Link>,
    /// The kill-switch banner, while one is engaged.
    pub kill: Option<String>,
}

/// The chrome of the page being rendered (none outside a page request).
pub fn current() -> Chrome {
    CHROME.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `f` (the rest of the request) with `c` as its pages' chrome.
pub async fn scope<F: Future>(c: Chrome, f: F) -> F::Output {
    CHROME.scope(c, f).await
}

/// The navigation of a role: every area it may open, in working order.
fn links(state: &AppState, role: Option<Role>, platform_admin: bool, path: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut add = |href: &'static str, label: &'static str| {
        let current = path == href || path.starts_with(&format!("{href}/"));
        out.push(Link { href, label, current });
    };
    if let Some(role) = role {
        let may = |object: &str, action: &str| state.authz.allows(role, object, action);
        if may("case", "read") {
            add("/cases", "Cases");
        }
        if may("gate", "read") {
            add("/gates", "Approvals");
        }
        if may("dashboard", "read") {
            add("/dashboard", "Dashboard");
        }
        if may("brief", "read_approved") {
            add("/briefs", "Briefs");
        }
        if may("integration", "read") {
            add("/integrations", "Integrations");
        }
        if may("correlation", "configure") {
            add("/tuning", "Tuning");
        }
        if may("member", "list") {
            add("/members", "Members");
        }
        if may("sso", "configure") {
            add("/single-sign-on", "Single sign-on");
        }
        if may("session_settings", "read") {
            add("/settings", "Settings");
        }
        if may("audit", "read") {
            add("/audit", "Audit log");
        }
        if may("kill_switch", "engage") {
            add("/kill-switch", "Kill switch");
        }
    }
    if platform_admin {
        add("/tenants", "Tenants");
    }
    out
}

/// The chrome for a request by `p` to `path`. Never fails: what cannot be
/// read is left out (the page itself reports errors).
pub async fn resolve(state: &AppState, p: &Principal, path: &str) -> Chrome {
    let Principal::Session { info, .. } = p else {
        return Chrome::default();
    };
    let mut c = Chrome {
        who: Some(info.email.clone()),
        csrf: info.csrf.clone(),
        ..Chrome::default()
    };
    let mut role = None;
    if let Some(t) = info.active_tenant {
        role = auth::role_in_cached(&state.store, &state.auth_cache, info.user, t)
            .await
            .ok()
            .flatten();
        if role.is_some() {
            c.tenant = identity::get_tenant(state.store.conn(), t)
                .await
                .ok()
                .map(|t| t.name);
            if let Ok(tx) = state.store.begin_tenant(t).await {
                if let Ok(k) = kill::state(&tx).await
                    && k.engaged()
                {
                    c.kill = Some(format!(
                        "Kill switch engaged: {}. No automatic step starts and no external write is sent, approved ones included.",
                        k.describe()
                    ));
                }
                let _ = tx.commit().await;
            }
        }
    } else if info.platform_admin
        && let Ok(Some(e)) = kill::platform(state.store.conn()).await
    {
        c.kill = Some(format!(
            "Platform kill switch engaged since {} by {}: no tenant's automation runs.",
            e.at.format("%Y-%m-%d %H:%M UTC"),
            e.by
        ));
    }
    c.role = role.map(Role::as_str);
    c.links = links(state, role, info.platform_admin, path);
    c
}
