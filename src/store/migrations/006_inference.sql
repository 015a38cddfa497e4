-- Inference: dedicated deployments and their replicas (billed per replica-second in explicit
-- windows, like runs), token usage per org, OpenAI-style files, and batches whose lines record
-- their result once, so the output files can be derived again after any crash.

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    user_id TEXT NOT NULL,
    hf_model_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    spec TEXT NOT NULL,              -- the create request as JSON
    status TEXT NOT NULL,            -- pending starting running paused stopping stopped failed
    errors TEXT,
    min_replicas INTEGER NOT NULL,
    max_replicas INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    stopped_at INTEGER
);
CREATE INDEX deployments_org ON deployments (org_id, created_at);

-- One model server process. ended_at NULL while it lives (or until a restart finds it gone).
CREATE TABLE inference_replicas (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    org_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    metered_until INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX inference_replicas_dep ON inference_replicas (deployment_id);
-- A replica's charge windows, each written once (ref = the replica id).
CREATE UNIQUE INDEX ledger_deployment_window ON ledger (ref, window_start)
    WHERE kind = 'deployment';

CREATE TABLE inference_usage (
    id INTEGER PRIMARY KEY,
    org_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX inference_usage_org ON inference_usage (org_id, created_at);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX files_org ON files (org_id, created_at);

CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,            -- creation order, for list's after/limit
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    model TEXT,
    completion_window TEXT NOT NULL,
    metadata TEXT,
    status TEXT NOT NULL,
    errors TEXT,                     -- the errors list as JSON, or NULL
    output_file_id TEXT,
    error_file_id TEXT,
    total INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    in_progress_at INTEGER, expires_at INTEGER, finalizing_at INTEGER, completed_at INTEGER,
    failed_at INTEGER, expired_at INTEGER, cancelling_at INTEGER, cancelled_at INTEGER
);
CREATE INDEX batches_org ON batches (org_id, seq);

-- A batch's lines: done once (result written with done_at in the same statement that finds it
-- not yet done), so each custom_id has exactly one result whatever restarts happen.
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL REFERENCES batches(id),
    line INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    body TEXT NOT NULL,
    ok INTEGER,                      -- 1 output, 0 error, NULL not yet done
    result TEXT,                     -- the output or error line as JSON
    done_at INTEGER,
    PRIMARY KEY (batch_id, line)
);
CREATE UNIQUE INDEX batch_lines_custom ON batch_lines (batch_id, custom_id);
