-- 0002_edges_devices_credentials: edge gateways, stored credentials and managed devices.

-- An edge gateway. It joins the hub's NATS as a leaf node with user = id and a password that was
-- shown once at registration; only its bcrypt hash is kept (NATS accepts bcrypt hashes).
CREATE TABLE edges (
    id                 text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name               text        NOT NULL DEFAULT '',
    description        text        NOT NULL DEFAULT '',
    nats_password_hash text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- Persisted periodically from the live status the Hub keeps in memory (not per heartbeat).
    last_seen          timestamptz,
    last_status        jsonb
);

-- A stored credential (device password, API token, HTTP header). The secret is encrypted with the
-- Hub's key (Fernet); the plaintext is never stored.
CREATE TABLE credentials (
    id               text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name             text        NOT NULL UNIQUE,
    kind             text        NOT NULL CHECK (kind IN ('username_password', 'token', 'header')),
    username         text        NOT NULL DEFAULT '',
    secret_encrypted bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A managed device: its protocol settings are exactly the connection fields of the device node that
-- reads it (modbus.read / opcua.subscribe). edge_id is NULL only after its edge was removed with force.
CREATE TABLE devices (
    id            text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name          text        NOT NULL DEFAULT '',
    description   text        NOT NULL DEFAULT '',
    protocol      text        NOT NULL CHECK (protocol IN ('modbus', 'opcua')),
    edge_id       text        REFERENCES edges (id) ON DELETE RESTRICT,
    credential_id text        REFERENCES credentials (id) ON DELETE RESTRICT,
    settings      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_edge ON devices (edge_id);
CREATE INDEX devices_credential ON devices (credential_id);
