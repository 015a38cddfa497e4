-- Buckets of organizations: a run sees at /mnt/s3 the bucket of the credentials that started
-- it (an org API key: the org's, owner id "o-<org id>"; else its user's), and S3 credentials
-- open the bucket of the credentials that asked for them. NULL in either: the user's own
-- bucket (rows written before this).
ALTER TABLE runs ADD COLUMN bucket TEXT;
ALTER TABLE s3_credentials ADD COLUMN owner TEXT;
CREATE INDEX s3_credentials_user ON s3_credentials (user_id);
CREATE INDEX runs_user_status ON runs (user_id, status);
