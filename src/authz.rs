//! Role-based authorization: the casbin model and the role × action matrix
//! from `policies/`, compiled into the binary. The subject is the role the
//! principal holds in the request's tenant right now (see `web::guard`).

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use vigil_orchestrator::Role;

use crate::Error;

const MODEL: &str = include_str!("../policies/model.conf");
const ROLES: &str = include_str!("../policies/roles.csv");

/// One row of the matrix: `role` may do `action` on `object`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub role: Role,
    pub object: String,
    pub action: String,
}

/// Parses `policies/roles.csv` (`p, role, object, action`; `#` comments).
pub fn rules() -> Result<Vec<Rule>, Error> {
    let mut out = Vec::new();
    for (n, line) in ROLES.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [p, role, object, action] = f.as_slice() else {
            return Err(Error::Config(format!(
                "policies/roles.csv:{}: expected `p, role, object, action`",
                n + 1
            )));
        };
        if *p != "p" || object.is_empty() || action.is_empty() {
            return Err(Error::Config(format!(
                "policies/roles.csv:{}: malformed rule",
                n + 1
            )));
        }
        let role: Role = role
            .parse()
            .map_err(|e| Error::Config(format!("policies/roles.csv:{}: {e}", n + 1)))?;
        out.push(Rule {
            role,
            object: (*object).to_owned(),
            action: (*action).to_owned(),
        });
    }
    Ok(out)
}

pub struct Authorizer {
    enforcer: Enforcer,
    /// casbin's decisions, memoized: the policies are fixed once loaded,
    /// so each (role, object, action) is enforced once and then looked up.
    decided: std::sync::RwLock<std::collections::HashMap<(Role, String, String), bool>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

impl Authorizer {
    pub async fn load() -> Result<Self, Error> {
        let model = DefaultModel::from_str(MODEL)
            .await
            .map_err(|e| Error::Config(format!("policies/model.conf: {e}")))?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
            .await
            .map_err(|e| Error::Config(format!("casbin: {e}")))?;
        let rows: Vec<Vec<String>> = rules()?
            .into_iter()
            .map(|r| vec![r.role.as_str().to_owned(), r.object, r.action])
            .collect();
        enforcer
            .add_policies(rows)
            .await
            .map_err(|e| Error::Config(format!("casbin: {e}")))?;
        Ok(Self {
            enforcer,
            decided: Default::default(),
        })
    }

    /// Whether `role` may do `action` on `object`. Errors deny.
    pub fn allows(&self, role: Role, object: &str, action: &str) -> bool {
        let key = (role, object.to_owned(), action.to_owned());
        if let Some(d) = self
            .decided
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return *d;
        }
        let d = self
            .enforcer
            .enforce((role.as_str(), object, action))
            .unwrap_or(false);
        self.decided
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matrix_loads_and_denies_by_default() {
        let a = Authorizer::load().await.unwrap();
        assert!(a.allows(Role::TenantAdmin, "integration_scope", "set"));
        assert!(
            !a.allows(Role::SecurityEngineer, "integration_scope", "set"),
            "only tenant admins enable writes"
        );
        assert!(a.allows(Role::SecurityEngineer, "kill_switch", "engage"));
        assert!(
            !a.allows(Role::SecurityEngineer, "kill_switch", "release"),
            "only tenant admins release"
        );
        assert!(a.allows(Role::AnalystEdit, "gate", "decide"));
        assert!(!a.allows(Role::AnalystRead, "gate", "decide"));
        assert!(a.allows(Role::Executive, "brief", "read_approved"));
        assert!(
            !a.allows(Role::Executive, "case", "read"),
            "no raw telemetry for executives"
        );
        assert!(
            !a.allows(Role::PlatformAdmin, "case", "read"),
            "no tenant content for platform admins"
        );
        assert!(!a.allows(Role::TenantAdmin, "nonsense", "read"));
    }

    #[test]
    fn every_rule_is_unique() {
        let rules = rules().unwrap();
        let set: std::collections::HashSet<_> = rules.iter().collect();
        assert_eq!(set.len(), rules.len());
    }
}
