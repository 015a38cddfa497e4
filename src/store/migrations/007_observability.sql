-- Observability: the samples of running runs' CPU, memory and GPUs that the sampler records
-- every few seconds (API.md 6.2), and an index for the logs of a user's runs in a time window
-- (6.1). Times are microseconds since the Unix epoch (UTC). A GPU column is NULL when the
-- run holds no GPU or NVML did not answer for it.

CREATE TABLE run_metrics (
    run_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    cpu_percent REAL,           -- of one CPU: 100 = one core busy the whole interval
    ram_used INTEGER,           -- bytes
    ram_total INTEGER,          -- bytes: the run's memory limit, else the machine's memory
    gpu_util REAL,              -- percent, the mean over the run's GPUs
    gpu_mem_util REAL,          -- percent of GPU memory in use, the mean
    gpu_temp REAL,              -- degrees Celsius, the mean
    gpu_power REAL,             -- watts, the sum
    gpu_power_limit REAL,       -- watts, the sum
    gpu_clock_sm REAL,          -- MHz, the mean
    gpu_clock_mem REAL,         -- MHz, the mean
    gpu_pcie_rx REAL,           -- bytes/s, the sum
    gpu_pcie_tx REAL,           -- bytes/s, the sum
    PRIMARY KEY (run_id, ts)
) WITHOUT ROWID;
CREATE INDEX run_metrics_ts ON run_metrics (ts);

CREATE INDEX runs_user_started ON runs (org_id, user_id, started_at);
