//! SAML 2.0 service provider, with `samael` (xmlsec): SP-initiated login
//! (AuthnRequest over HTTP-Redirect) and the verification of the IdP's
//! Response posted back. Knows nothing about the database: the caller keeps
//! the request id and the assertion ids already seen.
//!
//! What a Response must pass (each refusal names its reason):
//! * exactly one Assertion element in the whole document (no wrapping room);
//! * a signature by a certificate of the IdP's metadata, RSA/ECDSA with
//!   SHA-256 or stronger; what is read afterwards is only what the
//!   signature covered (samael's `ValidateAndMarkNoAncestors` reduction), so
//!   wrapped or injected content is never the identity;
//! * Destination and Recipient = this SP's ACS URL; InResponseTo = the
//!   request this login sent; Issuer = the IdP; an AudienceRestriction
//!   naming this SP (required, not only checked when present); within
//!   NotBefore / NotOnOrAfter (180 s skew).

use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::EntityDescriptor;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};

#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("IdP metadata is invalid: {0}")]
    Metadata(String),
    #[error("SAML response refused: {0}")]
    Response(String),
}

/// The IdP as its metadata describes it.
#[derive(Debug, Clone)]
pub struct Idp {
    pub entity_id: String,
    /// The HTTP-Redirect SingleSignOnService.
    pub sso_url: String,
}

/// This SP, per provider: entity id and assertion consumer service URL.
#[derive(Debug, Clone)]
pub struct Sp {
    pub entity_id: String,
    pub acs_url: String,
}

/// The verified identity of an assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlIdentity {
    pub issuer: String,
    /// The NameID, whole (a comment inside it cannot cut it short).
    pub subject: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub authn_context: Vec<String>,
    /// For the replay cache.
    pub assertion_id: String,
    pub not_on_or_after: Option<chrono::DateTime<chrono::Utc>>,
}

const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// Parses IdP metadata: an entity id, a signing certificate and an
/// HTTP-Redirect SSO service are required.
pub fn parse_metadata(xml: &str) -> Result<(EntityDescriptor, Idp), SamlError> {
    if xml.len() > 256 * 1024 {
        return Err(SamlError::Metadata("larger than 256 KiB".into()));
    }
    let md: EntityDescriptor = xml.parse().map_err(|e| SamlError::Metadata(format!("{e}")))?;
    let entity_id = md
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| SamlError::Metadata("no entityID".into()))?;
    let probe = ServiceProviderBuilder::default()
        .idp_metadata(md.clone())
        .build()
        .map_err(|e| SamlError::Metadata(e.to_string()))?;
    match probe.idp_signing_certs() {
        Ok(Some(c)) if !c.is_empty() => {}
        Ok(_) => return Err(SamlError::Metadata("no signing certificate".into())),
        Err(e) => return Err(SamlError::Metadata(format!("signing certificate: {e}"))),
    }
    let sso_url = probe
        .sso_binding_location(REDIRECT)
        .ok_or_else(|| SamlError::Metadata("no HTTP-Redirect SingleSignOnService".into()))?;
    Ok((md, Idp { entity_id, sso_url }))
}

fn service_provider(md: EntityDescriptor, sp: &Sp) -> Result<ServiceProvider, SamlError> {
    ServiceProviderBuilder::default()
        .entity_id(Some(sp.entity_id.clone()))
        .acs_url(Some(sp.acs_url.clone()))
        .idp_metadata(md)
        .allow_idp_initiated(false)
        .allowed_signature_algorithms(Some(vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::RsaSha384,
            AllowedSignatureAlgorithm::RsaSha512,
            AllowedSignatureAlgorithm::EcdsaSha256,
            AllowedSignatureAlgorithm::EcdsaSha384,
            AllowedSignatureAlgorithm::EcdsaSha512,
        ]))
        .build()
        .map_err(|e| SamlError::Metadata(e.to_string()))
}

/// An AuthnRequest to the IdP: the redirect URL and the request id to keep
/// (its InResponseTo must come back).
pub fn authn_request(metadata_xml: &str, sp: &Sp, relay_state: &str) -> Result<(String, String), SamlError> {
    use rand::RngCore;
    let (md, idp) = parse_metadata(metadata_xml)?;
    let provider = service_provider(md, sp)?;
    let mut req = provider
        .make_authentication_request(&idp.sso_url)
        .map_err(|e| SamlError::Metadata(e.to_string()))?;
    let mut id = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut id);
    req.id = format!("id-{}", hex::encode(id));
    let url = req
        .redirect(relay_state)
        .map_err(|e| SamlError::Metadata(e.to_string()))?
        .ok_or_else(|| SamlError::Metadata("no destination".into()))?;
    Ok((url.to_string(), req.id))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// This SP's metadata, for the IdP's administrator: entity id, the
/// HTTP-POST ACS, signed assertions wanted.
pub fn sp_metadata(sp: &Sp) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        xml_escape(&sp.entity_id),
        xml_escape(&sp.acs_url)
    )
}

/// Counts Assertion (and EncryptedAssertion) elements, any prefix.
fn assertion_elements(xml: &str) -> usize {
    let mut n = 0;
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with("!--") {
            match rest.find("-->") {
                Some(end) => rest = &rest[end..],
                None => break,
            }
            continue;
        }
        let name: &str = rest
            .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .next()
            .unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        if local == "Assertion" || local == "EncryptedAssertion" {
            n += 1;
        }
    }
    n
}

/// Verifies a base64 SAMLResponse for the request `request_id`.
pub fn verify_response(
    metadata_xml: &str,
    sp: &Sp,
    saml_response_b64: &str,
    request_id: &str,
    group_attribute: &str,
) -> Result<SamlIdentity, SamlError> {
    use base64::Engine as _;
    let refuse = |m: String| SamlError::Response(m);
    if saml_response_b64.len() > 1024 * 1024 {
        return Err(refuse("larger than 1 MiB".into()));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(saml_response_b64.trim())
        .map_err(|_| refuse("SAMLResponse is not base64".into()))?;
    let xml = String::from_utf8(raw).map_err(|_| refuse("SAMLResponse is not UTF-8".into()))?;
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(refuse("a document type declaration is not allowed".into()));
    }
    let found = assertion_elements(&xml);
    if found != 1 {
        return Err(refuse(format!("exactly one Assertion is allowed, found {found}")));
    }
    let (md, idp) = parse_metadata(metadata_xml)?;
    let provider = service_provider(md, sp)?;
    let assertion = provider
        .parse_xml_response(&xml, Some(&[request_id]))
        .map_err(|e| refuse(e.to_string()))?;
    // The audience is required, not only checked when present.
    let audience_ok = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_ref())
        .is_some_and(|rs| !rs.is_empty() && rs.iter().all(|r| r.audience.iter().any(|a| a == &sp.entity_id)));
    if !audience_ok {
        return Err(refuse(format!(
            "the assertion's audience is not this service provider ({})",
            sp.entity_id
        )));
    }
    let subject = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refuse("the assertion names no subject".into()))?;
    let mut email = None;
    let mut groups = Vec::new();
    for st in assertion.attribute_statements.iter().flatten() {
        for a in &st.attributes {
            let names = [a.name.as_deref(), a.friendly_name.as_deref()];
            let values = a.values.iter().filter_map(|v| v.value.clone());
            if names.contains(&Some(group_attribute)) {
                groups.extend(values);
            } else if names
                .iter()
                .any(|n| matches!(n, Some("mail" | "email" | "urn:oid:0.9.2342.19200300.100.1.3")))
            {
                email = email.or_else(|| a.values.iter().find_map(|v| v.value.clone()));
            }
        }
    }
    let authn_context = assertion
        .authn_statements
        .iter()
        .flatten()
        .filter_map(|s| s.authn_context.as_ref()?.value.as_ref()?.value.clone())
        .collect();
    Ok(SamlIdentity {
        issuer: idp.entity_id,
        subject,
        email,
        groups,
        authn_context,
        assertion_id: assertion.id.clone(),
        not_on_or_after: assertion.conditions.as_ref().and_then(|c| c.not_on_or_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertions_are_counted_with_any_prefix_outside_comments() {
        assert_eq!(assertion_elements("<r><saml:Assertion ID='a'/></r>"), 1);
        assert_eq!(assertion_elements("<r><Assertion><x/></Assertion></r>"), 1);
        assert_eq!(
            assertion_elements("<r><a:Assertion/><b:EncryptedAssertion/></r>"),
            2
        );
        assert_eq!(assertion_elements("<r><!-- <Assertion/> --><Assertion/></r>"), 1);
        assert_eq!(assertion_elements("<r><AssertionX/></r>"), 0);
    }
}
