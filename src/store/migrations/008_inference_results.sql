-- Streaming inferences (API.md 16.6): one row from submit, with the finished or failed event
-- once it ends, so that its stream can be read again after it left memory or after a restart.
CREATE TABLE inference_results (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'finished', 'failed')),
    event TEXT,                 -- the data of the last event, as sent
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX inference_results_org ON inference_results (org_id, created_at);
