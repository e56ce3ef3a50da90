<?php
// Test accounts: uid, mail and a groups attribute (what Vigil maps to roles).
$config = [
    'admin' => ['core:AdminPassword'],
    'example-userpass' => [
        'exampleauth:UserPass',
        'alice:alice-pw' => ['uid' => ['alice'], 'mail' => ['alice@example.com'], 'groups' => ['soc']],
        'carol:carol-pw' => ['uid' => ['carol'], 'mail' => ['carol@example.com'], 'groups' => ['soc-admins']],
        'bob:bob-pw' => ['uid' => ['bob'], 'mail' => ['bob@example.com'], 'groups' => ['marketing']],
        'mallory:mallory-pw' => [
            'uid' => ['mallory'],
            'mail' => ['alice@example.com.evil.test'],
            'groups' => ['soc'],
        ],
    ],
];
