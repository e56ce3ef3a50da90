<?php
// Vigil's SP (entity id and ACS from the environment); for the
// wrong-audience test a second SP entity that posts to the same ACS; for
// the wrong-recipient test a third one whose ACS is elsewhere.
$sps = [
    getenv('SP_ENTITY') => getenv('SP_ACS'),
    getenv('SP_OTHER_ENTITY') => getenv('SP_ACS'),
    getenv('SP_THIRD_ENTITY') => getenv('SP_THIRD_ACS'),
];
foreach (array_filter($sps) as $entity => $acs) {
    if (!$entity) {
        continue;
    }
    $metadata[$entity] = [
        'AssertionConsumerService' => $acs,
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
