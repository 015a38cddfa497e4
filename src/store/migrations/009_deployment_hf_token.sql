-- A deployment's hf_token, for the model server's download after a restart: sealed under the
-- secrets master key (AES-256-GCM, the deployment id as associated data), hex. NULL without
-- one. Only the supervisor's query at start-up reads it; the API never does.
ALTER TABLE deployments ADD COLUMN hf_token_sealed TEXT;
