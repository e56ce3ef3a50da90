<?php
// Vigil's SP (entity id and ACS from the environment) and, for the
// wrong-audience test, a second SP entity that posts to the same ACS.
foreach (array_filter([getenv('SP_ENTITY'), getenv('SP_OTHER_ENTITY')]) as $entity) {
    $metadata[$entity] = [
        'AssertionConsumerService' => getenv('SP_ACS'),
        'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
        'simplesaml.nameidattribute' => 'mail',
        'simplesaml.attributes' => true,
        'saml20.sign.response' => true,
        'saml20.sign.assertion' => true,
        'validate.authnrequest' => false,
        // The expired-assertion test makes them expire before they are made.
        'assertion.lifetime' => (int) (getenv('ASSERTION_LIFETIME') ?: 300),
    ];
}
