-- Issue 21: sites, groups of chargers behind one grid connection, and the power they share.
-- (Numbered 0018 in the plan of issue 21's branches; the integrator renumbers.)
CREATE TABLE sites (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    limit_w    INTEGER NOT NULL CHECK (limit_w > 0),     -- the grid connection's limit
    min_w      INTEGER NOT NULL CHECK (min_w >= 0),      -- the least a session charges at
    created_at TEXT NOT NULL
);

-- A charger belongs to one site at most; max_w caps the whole charger (NULL: the site's limit).
CREATE TABLE site_chargers (
    cp_id   TEXT PRIMARY KEY REFERENCES charge_points(id) ON DELETE CASCADE,
    site_id TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    max_w   INTEGER CHECK (max_w IS NULL OR max_w > 0)
);
CREATE INDEX site_chargers_site ON site_chargers (site_id);
