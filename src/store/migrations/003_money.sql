-- Money: run charges as explicit time windows, vouchers, monthly free credits. The ledger stays
-- append-only; unique indexes make each charge window, each voucher redemption per org and each
-- month's free grant or expiry impossible to write twice.

ALTER TABLE ledger ADD COLUMN window_start INTEGER; -- run charges: the window charged (µs)
ALTER TABLE ledger ADD COLUMN window_end INTEGER;
CREATE UNIQUE INDEX ledger_run_window ON ledger (ref, window_start) WHERE kind = 'run';
CREATE UNIQUE INDEX ledger_voucher_once ON ledger (org_id, ref) WHERE kind = 'voucher';
CREATE UNIQUE INDEX ledger_free_once ON ledger (org_id, kind, ref)
    WHERE kind IN ('free', 'free_expiry');
CREATE INDEX ledger_ref ON ledger (ref);

-- Charges of a run cover running_at .. metered_until; written in the same transaction.
ALTER TABLE runs ADD COLUMN metered_until INTEGER;

CREATE TABLE vouchers (
    code TEXT PRIMARY KEY COLLATE NOCASE,
    credits INTEGER NOT NULL,             -- micro-credits
    expires_at INTEGER,                   -- NULL: never
    note TEXT,
    created_at INTEGER NOT NULL
);
