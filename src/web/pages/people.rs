//! People as people read them: the audit/actor labels the core stores
//! (`user:<id>`, `token:<id>`, `system:<part>`) shown as an e-mail address,
//! an API token's name, or the part of Vigil that acted.

use std::collections::HashMap;

use vigil_orchestrator::identity;
use vigil_orchestrator::store::TenantTx;

/// The tenant's members and tokens, by actor label.
#[derive(Debug, Default)]
pub struct People {
    names: HashMap<String, String>,
}

impl People {
    pub async fn load(tx: &TenantTx) -> vigil_orchestrator::Result<People> {
        Ok(Self::with_members(tx).await?.0)
    }

    /// The names, and the members they were read from (for a page that
    /// lists them too: one read).
    pub async fn with_members(tx: &TenantTx) -> vigil_orchestrator::Result<(People, Vec<identity::Member>)> {
        let members = identity::list_members(tx).await?;
        let mut names = HashMap::new();
        for m in &members {
            names.insert(format!("user:{}", m.user_id.0), m.email.clone());
        }
        for t in identity::list_api_tokens(tx).await? {
            names.insert(format!("token:{}", t.id), format!("API token “{}”", t.name));
        }
        Ok((People { names }, members))
    }

    /// How a person reads `label`.
    pub fn name(&self, label: &str) -> String {
        if let Some(n) = self.names.get(label) {
            return n.clone();
        }
        match label.split_once(':') {
            Some(("system", part)) => format!("Vigil ({part})"),
            Some(("user", _)) => "a former member".to_owned(),
            Some(("token", _)) => "a deleted API token".to_owned(),
            _ => label.to_owned(),
        }
    }
}
