-- 0003_flows_deploy: flows with immutable versions, what is deployed where, deployments and their per-edge status.

-- One row per flow; the documents live in flow_versions.
CREATE TABLE flows (
    id               text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name             text        NOT NULL,
    latest_version   integer     NOT NULL CHECK (latest_version >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text        NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text        NOT NULL DEFAULT '',
    deployed_version integer,    -- the version the edges should run; NULL: not deployed
    deployed_at      timestamptz
);
CREATE INDEX flows_name ON flows (lower(name));

-- Every save: the full document, immutable. document.version = version, document.id = flow_id.
CREATE TABLE flow_versions (
    flow_id     text        NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version >= 1),
    document    jsonb       NOT NULL,
    author      text        NOT NULL DEFAULT '',
    author_id   bigint      REFERENCES users (id) ON DELETE SET NULL,
    message     text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    node_count  integer     NOT NULL DEFAULT 0,
    wire_count  integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (flow_id, version)
);

-- The Hub's record of what it has put into each edge's plan bundle for each flow (desired state).
CREATE TABLE flow_placements (
    flow_id  text    NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    edge     text    NOT NULL,
    version  integer NOT NULL,
    hash     text    NOT NULL,
    steps    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (flow_id, edge)
);
CREATE INDEX flow_placements_edge ON flow_placements (edge);

CREATE TABLE deployments (
    id       bigserial   PRIMARY KEY,
    flow_id  text        NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version  integer,                -- NULL for an undeploy
    action   text        NOT NULL CHECK (action IN ('deploy', 'undeploy', 'redeploy')),
    by_user  text        NOT NULL DEFAULT '',
    by_id    bigint      REFERENCES users (id) ON DELETE SET NULL,
    message  text        NOT NULL DEFAULT '',
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_flow ON deployments (flow_id, id DESC);

-- Per edge: put the plan (apply) or take the flow off (remove), and what the edge said.
CREATE TABLE deployment_edges (
    deployment_id bigint      NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    edge          text        NOT NULL,
    flow_id       text        NOT NULL,
    action        text        NOT NULL CHECK (action IN ('apply', 'remove')),
    hash          text        NOT NULL DEFAULT '',
    steps         integer     NOT NULL DEFAULT 0,
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'applied', 'failed', 'removed', 'superseded')),
    error         text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, edge)
);
CREATE INDEX deployment_edges_open ON deployment_edges (edge, flow_id) WHERE state IN ('pending', 'failed');
