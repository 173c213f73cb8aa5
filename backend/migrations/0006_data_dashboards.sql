-- 0006_data_dashboards: the historian's series catalog and rejects, and dashboards.
--
-- The historian's own tables (proxus_points, proxus_events) are created by
-- nodes.sink.historian.ensure_schema at Hub start, because they become TimescaleDB hypertables
-- whenever the extension is present (also when it is installed later).

-- One row per series the Hub's historian writer has stored: the viewer's series list and the
-- latest value without scanning the points. Maintained in the writer's transactions; `points`
-- counts rows delivered (a replayed batch counts again), hence an estimate.
CREATE TABLE historian_series (
    series          text             PRIMARY KEY,
    first_ts        timestamptz      NOT NULL,
    last_ts         timestamptz      NOT NULL,
    points          bigint           NOT NULL DEFAULT 0,
    last_value      double precision,
    last_value_text text,
    last_quality    smallint         NOT NULL DEFAULT 0,
    updated_at      timestamptz      NOT NULL DEFAULT now()
);
-- Prefix searches (series LIKE 'plant/line1/%') use this index under any collation.
CREATE INDEX historian_series_prefix ON historian_series (series text_pattern_ops);

-- Records the writer could not store (undecodable, or refused by the database), kept for
-- inspection instead of being retried forever or dropped silently.
CREATE TABLE historian_rejects (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    edge        text        NOT NULL,
    subject     text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    kind        text        NOT NULL DEFAULT '',
    error       text        NOT NULL,
    payload     bytea       NOT NULL
);
CREATE INDEX historian_rejects_at ON historian_rejects (at DESC);

CREATE TABLE dashboards (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '',
    time_range  jsonb       NOT NULL,
    refresh_s   integer     NOT NULL DEFAULT 0 CHECK (refresh_s BETWEEN 0 AND 86400),
    panels      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- The flow the dashboard was made for (by a template), if any.
    flow_id     text        REFERENCES flows (id) ON DELETE SET NULL,
    version     integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX dashboards_name ON dashboards (lower(name));
CREATE INDEX dashboards_flow ON dashboards (flow_id) WHERE flow_id IS NOT NULL;
