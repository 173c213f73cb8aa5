-- 0005_alerts: alert rules, alerts with their history, notification channels and a durable
-- notification queue (every delivery attempt recorded), and the position of alarm-event ingestion.

CREATE TABLE alert_rules (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '',
    kind        text        NOT NULL CHECK (kind IN ('edge_offline', 'device_disconnected', 'node_error_rate',
                                                     'outbox_depth', 'series_threshold')),
    severity    text        NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    enabled     boolean     NOT NULL DEFAULT true,
    condition   jsonb       NOT NULL,              -- the kind's parameters, {"kind": ..., ...}
    created_by  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per occurrence: raised, possibly acknowledged, eventually cleared. ``key`` identifies what
-- the alert is about (rule:<id>:<subject> or alarm:<series>:<alarm>); at most one is active per key.
CREATE TABLE alerts (
    id              bigserial   PRIMARY KEY,
    key             text        NOT NULL,
    source          text        NOT NULL CHECK (source IN ('rule', 'alarm')),
    rule_id         bigint      REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name       text        NOT NULL DEFAULT '',
    kind            text        NOT NULL,          -- rule kind, or 'alarm' for analytics alarm events
    subject         text        NOT NULL,          -- the edge, device, node or series concerned
    title           text        NOT NULL,
    severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cleared')),
    raised_at       timestamptz NOT NULL DEFAULT now(),
    value           jsonb,                         -- evidence when raised
    message         text        NOT NULL DEFAULT '',
    cleared_at      timestamptz,
    clear_value     jsonb,
    clear_message   text        NOT NULL DEFAULT '',
    acknowledged_at timestamptz,
    acknowledged_by text,
    ack_comment     text        NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (key) WHERE state = 'active';
CREATE INDEX alerts_state ON alerts (state, id DESC);
CREATE INDEX alerts_rule ON alerts (rule_id, state);
CREATE INDEX alerts_key ON alerts (key, id DESC);

CREATE TABLE alert_transitions (
    id         bigserial   PRIMARY KEY,
    alert_id   bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    transition text        NOT NULL CHECK (transition IN ('raised', 'cleared', 'acknowledged')),
    by_user    text        NOT NULL DEFAULT '',     -- '' for the Hub itself
    value      jsonb,
    message    text        NOT NULL DEFAULT ''
);
CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, id);

CREATE TABLE alert_channels (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    enabled      boolean     NOT NULL DEFAULT true,
    target       jsonb       NOT NULL,             -- {"kind": "webhook", "url": ..., "headers": ..., "credential": ...}
    min_severity text        NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
    send_on      text[]      NOT NULL DEFAULT '{raise,clear}',
    rule_ids     bigint[],                         -- NULL: alerts of every rule
    alarm_events boolean     NOT NULL DEFAULT true, -- alerts from analytics alarm events
    max_attempts integer     NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 20),
    created_by   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The durable queue: a notification is pending until delivered (sent) or given up (failed).
CREATE TABLE alert_notifications (
    id              bigserial   PRIMARY KEY,
    alert_id        bigint      REFERENCES alerts (id) ON DELETE CASCADE,   -- NULL for a channel test
    channel_id      bigint      NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    event           text        NOT NULL CHECK (event IN ('raise', 'clear', 'ack', 'test')),
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),  -- also the lease of a delivery in progress
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text        NOT NULL DEFAULT ''
);
CREATE INDEX alert_notifications_due ON alert_notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_notifications_alert ON alert_notifications (alert_id);
CREATE INDEX alert_notifications_channel ON alert_notifications (channel_id, id DESC);

CREATE TABLE alert_notification_attempts (
    id              bigserial   PRIMARY KEY,
    notification_id bigint      NOT NULL REFERENCES alert_notifications (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT now(),
    status          integer,                       -- HTTP status; NULL when no response
    error           text        NOT NULL DEFAULT '',
    duration_ms     integer     NOT NULL DEFAULT 0
);
CREATE INDEX alert_notification_attempts_notification ON alert_notification_attempts (notification_id, id);

-- Alarm events taken from the historian's proxus_events: the high-water mark, and the events seen
-- within the look-back window (events replayed late from an edge's outbox are still picked up once).
CREATE TABLE alert_event_cursor (
    id     integer     PRIMARY KEY CHECK (id = 1),
    ts     timestamptz NOT NULL,
    series text        NOT NULL DEFAULT '',
    alarm  text        NOT NULL DEFAULT '',
    state  text        NOT NULL DEFAULT ''
);
CREATE TABLE alert_events_seen (
    ts     timestamptz NOT NULL,
    series text        NOT NULL,
    alarm  text        NOT NULL,
    state  text        NOT NULL,
    PRIMARY KEY (series, alarm, ts, state)
);
CREATE INDEX alert_events_seen_ts ON alert_events_seen (ts);
