-- The price book's history: each machine type's price per hour from `since` (µs) on. A run is
-- billed at the price in effect when it was submitted (the newest row of its profile with
-- since <= its created_at), so that a price changed by a reload (SIGHUP) bills new runs at
-- the new price and the runs submitted before at the old one. A machine type with no row is
-- billed at its configured price.
CREATE TABLE price_history (
    profile TEXT NOT NULL,
    since INTEGER NOT NULL,
    price_micro INTEGER NOT NULL,
    PRIMARY KEY (profile, since)
);
