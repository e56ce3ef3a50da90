<?php
// The IdP signs both the Response and the Assertion (RSA-SHA256); the
// NameID is the user's mail.
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'example-userpass',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    'simplesaml.nameidattribute' => 'mail',
    // With IDP_AUTHN_CONTEXT set, every assertion claims that context (the
    // MFA-trust test sets the REFEDS MFA profile).
    'authproc' => getenv('IDP_AUTHN_CONTEXT') ? [
        10 => ['class' => 'saml:AuthnContextClassRef', 'AuthnContextClassRef' => getenv('IDP_AUTHN_CONTEXT')],
    ] : [],
];
