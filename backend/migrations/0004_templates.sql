-- 0004_templates: user templates (built-in templates ship as files in backend/templates/builtin).
CREATE TABLE templates (
    id          text        PRIMARY KEY CHECK (id ~ '^tpl-[a-f0-9]{16}$'),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '',
    category    text        NOT NULL DEFAULT 'custom',
    parameters  jsonb       NOT NULL DEFAULT '[]',
    document    jsonb       NOT NULL,              -- flow document with {{name}} placeholders
    dashboard   jsonb,                             -- dashboard definition created with the flow
    created_by  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_category ON templates (category, lower(name));
