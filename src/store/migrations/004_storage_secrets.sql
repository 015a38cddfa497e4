-- Storage and secrets: the environment variables injected into runs (secret values only as
-- AES-256-GCM ciphertext), and the temporary S3 credentials of the storage endpoint (the
-- secret key encrypted the same way, since SigV4 needs it to verify; the session token only
-- as its SHA-256). Times are microseconds since the Unix epoch (UTC).

CREATE TABLE env_vars (
    id TEXT PRIMARY KEY,                  -- a UUID
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,                -- '' for an org-wide variable
    name TEXT NOT NULL,
    value TEXT,                           -- plain variables; NULL for secrets
    sealed TEXT,                          -- secrets: hex of nonce | ciphertext | tag
    is_secret INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (org_id, user_id, name)
);

CREATE TABLE s3_credentials (
    access_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,                -- the one bucket these open
    sealed_secret TEXT NOT NULL,          -- hex of nonce | ciphertext | tag (AAD: access_key)
    token_hash TEXT NOT NULL,             -- SHA-256 hex of the session token
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX s3_credentials_expiry ON s3_credentials (expires_at);
