//! SAML 2.0 service provider, with `samael` (xmlsec): SP-initiated login
//! (AuthnRequest over HTTP-Redirect) and the verification of the IdP's
//! Response posted back. Knows nothing about the database: the caller keeps
//! the request id and the assertion ids already seen.
//!
//! What a Response must pass (each refusal names its reason):
//! * UTF-8 only: a byte-order mark of another encoding, a declared encoding
//!   other than UTF-8 or a NUL byte is refused before any parsing (libxml2
//!   honours a declared encoding, so a UTF-7 document would read differently
//!   from its bytes);
//! * parsed by libxml2 (the parser xmlsec verifies with), no document type
//!   declaration and exactly one Assertion element in the parsed tree (no
//!   wrapping room);
//! * the Response wrapper itself: root `samlp:Response`, `Destination` = this
//!   SP's ACS (required when the Response is not signed), `Status` Success,
//!   `Issuer` (when present) the IdP, `InResponseTo` this login's request;
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
    /// The SingleSignOnService: HTTP-Redirect if offered, else HTTP-POST.
    pub sso_url: String,
    pub sso_binding: Binding,
}

/// How an AuthnRequest travels to the IdP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Redirect,
    Post,
}

/// An AuthnRequest ready to send.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// Send the browser here.
    Redirect(String),
    /// Post this form (an auto-posting page): `SAMLRequest` and `RelayState` to `url`.
    Post {
        url: String,
        saml_request: String,
        relay_state: String,
    },
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
const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Refuses a document that is not plain UTF-8 before any parser sees it:
/// a byte-order mark of another encoding, an XML declaration naming another
/// encoding, a NUL byte (UTF-16/32 without a mark), invalid UTF-8.
pub fn utf8_only(raw: &[u8]) -> Result<&str, String> {
    const MARKS: [(&[u8], &str); 6] = [
        (&[0x00, 0x00, 0xFE, 0xFF], "UTF-32"),
        (&[0xFF, 0xFE, 0x00, 0x00], "UTF-32"),
        (&[0xFE, 0xFF], "UTF-16"),
        (&[0xFF, 0xFE], "UTF-16"),
        (b"+/v", "UTF-7"),
        (&[0xDD, 0x73, 0x66, 0x73], "UTF-EBCDIC"),
    ];
    for (mark, name) in MARKS {
        if raw.starts_with(mark) {
            return Err(format!(
                "the document starts with a {name} byte-order mark; only UTF-8 is accepted"
            ));
        }
    }
    if raw.contains(&0) {
        return Err("the document contains a NUL byte (UTF-16 or UTF-32?); only UTF-8 is accepted".into());
    }
    let text = std::str::from_utf8(raw).map_err(|_| "the document is not valid UTF-8".to_owned())?;
    // Every XML declaration (a second one is an error anyway), any case.
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<?xml") {
        let start = at + i;
        let end = lower[start..].find("?>").map_or(lower.len(), |e| start + e);
        let decl = &lower[start..end];
        if let Some(e) = decl.find("encoding") {
            let value: String = decl[e + "encoding".len()..]
                .trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| !matches!(c, '"' | '\'' | '?') && !c.is_whitespace())
                .collect();
            if value != "utf-8" && value != "utf8" {
                return Err(format!(
                    "the document declares the encoding `{}`; only UTF-8 is accepted",
                    value.escape_debug()
                ));
            }
        }
        at = start + 5;
    }
    Ok(text)
}

/// What the parsed tree holds, as libxml2 (the parser xmlsec verifies
/// with) reads it.
#[derive(Debug, Default)]
struct TreeFacts {
    assertions: usize,
    dtd: bool,
}

fn walk(node: libxml::tree::Node, facts: &mut TreeFacts) {
    use libxml::tree::NodeType as T;
    let mut next = Some(node);
    while let Some(n) = next {
        match n.get_type() {
            Some(T::DTDNode | T::DocumentTypeNode | T::EntityDecl | T::EntityRefNode | T::EntityNode) => {
                facts.dtd = true;
            }
            Some(T::ElementNode) => {
                let name = n.get_name();
                if name == "Assertion" || name == "EncryptedAssertion" {
                    facts.assertions += 1;
                }
            }
            _ => {}
        }
        if let Some(child) = n.get_first_child() {
            walk(child, facts);
        }
        next = n.get_next_sibling();
    }
}

fn ns_of(n: &libxml::tree::Node) -> Option<String> {
    n.get_namespace().map(|ns| ns.get_href())
}

fn child(n: &libxml::tree::Node, ns: &str, name: &str) -> Option<libxml::tree::Node> {
    n.get_child_elements()
        .into_iter()
        .find(|c| c.get_name() == name && ns_of(c).as_deref() == Some(ns))
}

fn parse_tree(xml: &str) -> Result<libxml::tree::Document, String> {
    libxml::parser::Parser::default()
        .parse_string(xml)
        .map_err(|e| format!("the document is not well-formed XML ({e:?})"))
}

/// The Response wrapper's own checks (SAML core §3.2.2), on the parsed
/// tree: they may only refuse; what is read afterwards is signed content.
fn check_wrapper(
    doc: &libxml::tree::Document,
    acs_url: &str,
    idp_entity_id: &str,
    request_id: &str,
) -> Result<(), String> {
    let mut facts = TreeFacts::default();
    walk(doc.as_node(), &mut facts);
    if facts.dtd {
        return Err("a document type declaration is not allowed".into());
    }
    if facts.assertions != 1 {
        return Err(format!(
            "exactly one Assertion is allowed, found {}",
            facts.assertions
        ));
    }
    let root = doc.get_root_element().ok_or("the document has no root element")?;
    if root.get_name() != "Response" || ns_of(&root).as_deref() != Some(PROTOCOL_NS) {
        return Err("the document is not a SAML 2.0 Response".into());
    }
    let signed = child(&root, DSIG_NS, "Signature").is_some();
    match root.get_attribute("Destination") {
        Some(d) if d != acs_url => {
            return Err(format!(
                "the Response is addressed to {d}, not to this service provider's ACS ({acs_url})"
            ));
        }
        None if !signed => {
            return Err("an unsigned Response must name its Destination".into());
        }
        _ => {}
    }
    let status = child(&root, PROTOCOL_NS, "Status")
        .and_then(|st| child(&st, PROTOCOL_NS, "StatusCode"))
        .and_then(|c| c.get_attribute("Value"))
        .ok_or("the Response carries no Status")?;
    if status != SUCCESS {
        return Err(format!("the identity provider answered with the status {status}"));
    }
    if let Some(issuer) = child(&root, ASSERTION_NS, "Issuer") {
        let v = issuer.get_content();
        if v.trim() != idp_entity_id {
            return Err(format!(
                "the Response's Issuer is {}, not this provider ({idp_entity_id})",
                v.trim()
            ));
        }
    }
    match root.get_attribute("InResponseTo") {
        Some(id) if id == request_id => Ok(()),
        Some(_) => Err("the Response answers another request (InResponseTo)".into()),
        None => {
            Err("the Response answers no request (InResponseTo missing; IdP-initiated login is off)".into())
        }
    }
}

/// Parses IdP metadata: an entity id, a signing certificate and an
/// HTTP-Redirect or HTTP-POST SSO service are required. The document may be
/// an `EntityDescriptor`, or an `EntitiesDescriptor` holding the IdP's one
/// (`entity_id` names it; without a name there must be exactly one IdP).
pub fn parse_metadata(xml: &str, entity_id: Option<&str>) -> Result<(EntityDescriptor, Idp), SamlError> {
    use samael::metadata::{EntitiesDescriptor, EntityDescriptorType};
    let bad = |m: String| SamlError::Metadata(m);
    if xml.len() > 256 * 1024 {
        return Err(bad("larger than 256 KiB".into()));
    }
    let text = utf8_only(xml.as_bytes()).map_err(bad)?;
    let doc = parse_tree(text).map_err(bad)?;
    let mut facts = TreeFacts::default();
    walk(doc.as_node(), &mut facts);
    if facts.dtd {
        return Err(bad("a document type declaration is not allowed".into()));
    }
    let root = doc
        .get_root_element()
        .ok_or_else(|| bad("no root element".into()))?;
    let md: EntityDescriptor =
        if root.get_name() == "EntitiesDescriptor" && ns_of(&root).as_deref() == Some(METADATA_NS) {
            fn flatten(d: EntitiesDescriptor, out: &mut Vec<EntityDescriptor>) {
                for x in d.descriptors {
                    match x {
                        EntityDescriptorType::EntityDescriptor(e) => out.push(e),
                        EntityDescriptorType::EntitiesDescriptor(inner) => flatten(inner, out),
                    }
                }
            }
            let all: EntitiesDescriptor = text.parse().map_err(|e| bad(format!("{e}")))?;
            let mut found = Vec::new();
            flatten(all, &mut found);
            let mut idps: Vec<EntityDescriptor> = found
                .into_iter()
                .filter(|e| e.idp_sso_descriptors.as_ref().is_some_and(|d| !d.is_empty()))
                .filter(|e| entity_id.is_none_or(|want| e.entity_id.as_deref() == Some(want)))
                .collect();
            match (idps.len(), entity_id) {
                (1, _) => idps.remove(0),
                (0, Some(want)) => {
                    return Err(bad(format!(
                        "the EntitiesDescriptor holds no identity provider `{want}`"
                    )));
                }
                (0, None) => return Err(bad("the EntitiesDescriptor holds no identity provider".into())),
                (n, _) => {
                    return Err(bad(format!(
                        "the EntitiesDescriptor holds {n} identity providers; name one (entity_id)"
                    )));
                }
            }
        } else {
            text.parse().map_err(|e| bad(format!("{e}")))?
        };
    let found_id = md
        .entity_id
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| bad("no entityID".into()))?;
    if let Some(want) = entity_id
        && want != found_id
    {
        return Err(bad(format!("the metadata describes `{found_id}`, not `{want}`")));
    }
    let probe = ServiceProviderBuilder::default()
        .idp_metadata(md.clone())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    match probe.idp_signing_certs() {
        Ok(Some(c)) if !c.is_empty() => {}
        Ok(_) => return Err(bad("no signing certificate".into())),
        Err(e) => return Err(bad(format!("signing certificate: {e}"))),
    }
    let (sso_url, sso_binding) = match (
        probe.sso_binding_location(REDIRECT),
        probe.sso_binding_location(POST),
    ) {
        (Some(u), _) => (u, Binding::Redirect),
        (None, Some(u)) => (u, Binding::Post),
        (None, None) => {
            return Err(bad(
                "no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding".into(),
            ));
        }
    };
    Ok((
        md,
        Idp {
            entity_id: found_id,
            sso_url,
            sso_binding,
        },
    ))
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

/// An AuthnRequest to the IdP (by the binding its metadata offers) and the
/// request id to keep (its InResponseTo must come back).
pub fn authn_request(
    metadata_xml: &str,
    entity_id: Option<&str>,
    sp: &Sp,
    relay_state: &str,
) -> Result<(Outgoing, String), SamlError> {
    use base64::Engine as _;
    use rand::RngCore;
    let (md, idp) = parse_metadata(metadata_xml, entity_id)?;
    let provider = service_provider(md, sp)?;
    let mut req = provider
        .make_authentication_request(&idp.sso_url)
        .map_err(|e| SamlError::Metadata(e.to_string()))?;
    let mut id = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut id);
    req.id = format!("id-{}", hex::encode(id));
    let out = match idp.sso_binding {
        Binding::Redirect => Outgoing::Redirect(
            req.redirect(relay_state)
                .map_err(|e| SamlError::Metadata(e.to_string()))?
                .ok_or_else(|| SamlError::Metadata("no destination".into()))?
                .to_string(),
        ),
        Binding::Post => {
            use samael::traits::ToXml;
            let xml = req.to_string().map_err(|e| SamlError::Metadata(e.to_string()))?;
            Outgoing::Post {
                url: idp.sso_url.clone(),
                saml_request: base64::engine::general_purpose::STANDARD.encode(xml.as_bytes()),
                relay_state: relay_state.to_owned(),
            }
        }
    };
    Ok((out, req.id))
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

/// Verifies a base64 SAMLResponse for the request `request_id`.
pub fn verify_response(
    metadata_xml: &str,
    sp: &Sp,
    entity_id: Option<&str>,
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
    let xml = utf8_only(&raw).map_err(refuse)?;
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(refuse("a document type declaration is not allowed".into()));
    }
    let (md, idp) = parse_metadata(metadata_xml, entity_id)?;
    {
        let doc = parse_tree(xml).map_err(refuse)?;
        check_wrapper(&doc, &sp.acs_url, &idp.entity_id, request_id).map_err(refuse)?;
    }
    let provider = service_provider(md, sp)?;
    let assertion = provider
        .parse_xml_response(xml, Some(&[request_id]))
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

    fn facts(xml: &str) -> TreeFacts {
        let doc = parse_tree(xml).unwrap();
        let mut f = TreeFacts::default();
        walk(doc.as_node(), &mut f);
        f
    }

    #[test]
    fn assertions_are_counted_on_the_parsed_tree() {
        assert_eq!(
            facts("<r><saml:Assertion xmlns:saml='urn:x' ID='a'/></r>").assertions,
            1
        );
        assert_eq!(facts("<r><Assertion><x/></Assertion></r>").assertions, 1);
        assert_eq!(
            facts("<r xmlns:a='urn:a' xmlns:b='urn:b'><a:Assertion/><b:EncryptedAssertion/></r>").assertions,
            2
        );
        assert_eq!(facts("<r><!-- <Assertion/> --><Assertion/></r>").assertions, 1);
        assert_eq!(facts("<r><![CDATA[<Assertion/>]]><Assertion/></r>").assertions, 1);
        assert_eq!(facts("<r><AssertionX/></r>").assertions, 0);
        assert!(facts("<!DOCTYPE r [<!ENTITY e 'x'>]><r>&e;</r>").dtd);
        assert!(!facts("<r/>").dtd);
    }

    #[test]
    fn only_utf8_reaches_the_parser() {
        assert!(utf8_only(b"<?xml version='1.0' encoding='UTF-8'?><r/>").is_ok());
        assert!(utf8_only(b"<?xml version=\"1.0\" encoding = \"utf-8\" ?><r/>").is_ok());
        assert!(utf8_only(b"<r/>").is_ok());
        assert!(utf8_only(b"\xEF\xBB\xBF<r/>").is_ok(), "a UTF-8 mark is UTF-8");
        let e = utf8_only(b"<?xml version=\"1.0\" encoding=\"UTF-7\"?><r/>").unwrap_err();
        assert!(e.contains("utf-7"), "{e}");
        assert!(utf8_only(b"<?XML version='1.0' ENCODING='iso-8859-1'?><r/>").is_err());
        assert!(
            utf8_only(b"\xFF\xFE<\x00r\x00/\x00>\x00")
                .unwrap_err()
                .contains("UTF-16")
        );
        assert!(utf8_only(b"\xFE\xFF\x00<").unwrap_err().contains("UTF-16"));
        assert!(utf8_only(b"<\x00r\x00/\x00>\x00").unwrap_err().contains("NUL"));
        assert!(utf8_only(b"+/v8-<r/>").unwrap_err().contains("UTF-7"));
        assert!(utf8_only(b"<r>\xC3</r>").is_err());
        // A second declaration further on is read too.
        assert!(utf8_only(b"<r/><?xml encoding='utf-16'?>").is_err());
    }

    #[test]
    fn the_response_wrapper_is_checked() {
        let acs = "https://vigil/acs";
        let ok = |extra: &str, status: &str, issuer: &str, irt: &str| {
            format!(
                "<samlp:Response xmlns:samlp='{PROTOCOL_NS}' xmlns:saml='{ASSERTION_NS}' {extra} {irt}>{issuer}\
                 <samlp:Status><samlp:StatusCode Value='{status}'/></samlp:Status><saml:Assertion/></samlp:Response>"
            )
        };
        let check = |xml: String| check_wrapper(&parse_tree(&xml).unwrap(), acs, "idp", "req-1");
        let good_issuer = "<saml:Issuer>idp</saml:Issuer>";
        let irt = "InResponseTo='req-1'";
        assert!(check(ok(&format!("Destination='{acs}'"), SUCCESS, good_issuer, irt)).is_ok());
        let e = check(ok("Destination='https://other/acs'", SUCCESS, good_issuer, irt)).unwrap_err();
        assert!(e.contains("addressed to https://other/acs"), "{e}");
        let e = check(ok("", SUCCESS, good_issuer, irt)).unwrap_err();
        assert!(e.contains("unsigned Response must name its Destination"), "{e}");
        let e = check(ok(
            &format!("Destination='{acs}'"),
            "urn:oasis:names:tc:SAML:2.0:status:Requester",
            good_issuer,
            irt,
        ))
        .unwrap_err();
        assert!(
            e.contains("status urn:oasis:names:tc:SAML:2.0:status:Requester"),
            "{e}"
        );
        let e = check(ok(
            &format!("Destination='{acs}'"),
            SUCCESS,
            "<saml:Issuer>evil</saml:Issuer>",
            irt,
        ))
        .unwrap_err();
        assert!(e.contains("Issuer is evil"), "{e}");
        let e = check(ok(
            &format!("Destination='{acs}'"),
            SUCCESS,
            good_issuer,
            "InResponseTo='other'",
        ))
        .unwrap_err();
        assert!(e.contains("another request"), "{e}");
        let e = check(ok(&format!("Destination='{acs}'"), SUCCESS, good_issuer, "")).unwrap_err();
        assert!(e.contains("InResponseTo missing"), "{e}");
        let e = check("<Response xmlns='urn:other'><Assertion/></Response>".to_owned()).unwrap_err();
        assert!(e.contains("not a SAML 2.0 Response"), "{e}");
    }
}
