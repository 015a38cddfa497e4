-- Runs: what users submit (Python scripts, Docker images, Compose stacks), their life and
-- results; the idempotency keys of start requests; per-user hardware quotas; completion
-- callbacks waiting to be delivered. Times are microseconds since the Unix epoch (UTC).

CREATE TABLE runs (
    id TEXT PRIMARY KEY,                  -- a UUID
    org_id TEXT NOT NULL REFERENCES orgs(id),
    user_id TEXT NOT NULL,
    kind INTEGER NOT NULL,                -- 1 python, 2 image, 3 compose
    profile TEXT NOT NULL,                -- the hardware profile (execution_type)
    status TEXT NOT NULL,                 -- pending, starting, running, then a terminal one
    priority INTEGER NOT NULL DEFAULT 0,  -- higher first, then older first
    spec TEXT NOT NULL,                   -- the start request's body (JSON)
    file_name TEXT,
    timeout_s INTEGER NOT NULL,
    graceful_s INTEGER NOT NULL,
    parent_id TEXT,                       -- GPU selection: the parent execution id
    stream_token TEXT NOT NULL,           -- SHA-256 of the streaming_url's capability token
    callback_urls TEXT,                   -- JSON array of URLs, or NULL
    created_at INTEGER NOT NULL,
    started_at INTEGER,                   -- when it got its slot (starting)
    running_at INTEGER,                   -- when the user's code began
    ended_at INTEGER,                     -- when its process ended
    finished_at INTEGER,                  -- when lyceumd recorded the result
    return_code INTEGER,
    errors TEXT,
    reason TEXT,                          -- timeout, aborted, stopped, restart ...
    install_return_code INTEGER,
    gpus TEXT,                            -- GPU indices held, "0,1"
    backend TEXT,                         -- local, docker
    pid INTEGER,                          -- local: the process group leader
    pid_start INTEGER,                    -- local: its start time (clock ticks), to know it again
    stop_mode INTEGER NOT NULL DEFAULT 0, -- 1 abort, 2 stop: asked for, not yet done
    deleted_at INTEGER                    -- deleted by its owner: hidden, kept for billing
);
CREATE INDEX runs_queue ON runs (status, profile, priority DESC, created_at);
CREATE INDEX runs_org ON runs (org_id, created_at);
CREATE INDEX runs_parent ON runs (parent_id);

CREATE TABLE idempotency (
    org_id TEXT NOT NULL,
    key TEXT NOT NULL,
    route TEXT NOT NULL,
    answer TEXT NOT NULL,                 -- the JSON answered the first time
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE TABLE user_quotas (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    PRIMARY KEY (user_id, profile)
);
-- A user with no rows here may use every profile; rows restrict them to those listed.

CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    done_at INTEGER,
    last_error TEXT
);
CREATE INDEX callbacks_due ON callbacks (done_at, next_at);

ALTER TABLE orgs ADD COLUMN webhook_secret TEXT;
