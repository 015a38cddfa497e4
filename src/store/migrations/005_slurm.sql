-- Slurm: a run's job id in its backend (the Slurm job id), so that a restart can follow the job
-- again; and why a run still waits for its backend, when it does.
ALTER TABLE runs ADD COLUMN backend_ref TEXT;
ALTER TABLE runs ADD COLUMN waiting_reason TEXT;
