-- Docker runs' registry secrets (docker_registry_credentials, docker_password,
-- aws_secret_access_key, aws_session_token): never in the run's spec, but here, sealed under
-- the secrets master key (AES-256-GCM, "run_credentials:<run id>" as associated data), hex;
-- the executor drops the row once the run's images are pulled, and the trigger when the run
-- ends whichever way it ends.
CREATE TABLE run_credentials (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    sealed TEXT NOT NULL
);
CREATE TRIGGER run_credentials_end AFTER UPDATE OF status ON runs
WHEN NEW.status IN ('completed', 'failed', 'system_failure', 'aborted', 'cancelled')
BEGIN
    DELETE FROM run_credentials WHERE run_id = NEW.id;
END;

-- Which org pulled which image of which repository, and how: with its own registry
-- credentials (private 1) or without any (private 0). A repository another org pulled with
-- credentials is pulled again before one of its images runs for an org that did not (see
-- exec/images.c). image_id is 'pending:<run id>' while a pull with credentials is under way,
-- so that the tag it is about to move is not trusted before the row says whose it is.
CREATE TABLE docker_pulls (
    org_id TEXT NOT NULL,
    repo TEXT NOT NULL,     -- canonical: registry host, then the path ("docker.io/library/x")
    image_id TEXT NOT NULL, -- "sha256:..."
    private INTEGER NOT NULL,
    pulled_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, repo, image_id, private)
);
CREATE INDEX docker_pulls_repo ON docker_pulls (repo, private);
CREATE INDEX docker_pulls_image ON docker_pulls (image_id);
