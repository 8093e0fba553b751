-- The catalog people use every day: editable annotations with optimistic concurrency
-- (revision = ETag), aliases (some protected), an append-only log of every metadata
-- change (old and new values), and what discovery needs to stay fast at 100,000
-- versions: generated full-text vectors with GIN indexes and btree indexes that match
-- the keyset (cursor) orders. See docs/adr/0006-catalog-discovery-and-mlflow.md.

ALTER TABLE models DROP CONSTRAINT models_created_via_check;
ALTER TABLE models ADD CONSTRAINT models_created_via_check
    CHECK (created_via IN ('api', 'registration', 'mlflow'));

ALTER TABLE models
    ADD COLUMN revision   int NOT NULL DEFAULT 1 CHECK (revision >= 1),
    ADD COLUMN updated_at timestamptz,
    ADD COLUMN search     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', translate(name, '._-', '   ')), 'A')
        || setweight(to_tsvector('english', description), 'B')
        || setweight(to_tsvector('english', owner_team), 'C')
        || setweight(jsonb_to_tsvector('english', tags, '["string"]'), 'D')
    ) STORED;
UPDATE models SET updated_at = created_at;
ALTER TABLE models ALTER COLUMN updated_at SET NOT NULL;

CREATE INDEX models_search ON models USING gin (search);
CREATE INDEX models_owner_team ON models (owner_team, name);
CREATE INDEX models_tags ON models USING gin (tags jsonb_path_ops);
CREATE INDEX models_created ON models (created_at, name);
CREATE INDEX models_updated ON models (updated_at, name);

-- A version's description and tags are annotations people edit; what was registered
-- (artifact, digest, signature, model card, lineage) stays immutable.
ALTER TABLE model_versions
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN revision    int NOT NULL DEFAULT 1 CHECK (revision >= 1),
    ADD COLUMN risk_tier   text GENERATED ALWAYS AS (model_card ->> 'risk_tier') STORED,
    ADD COLUMN search      tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', translate(model_name, '._-', '   ')), 'A')
        || setweight(to_tsvector('english', description), 'B')
        || setweight(to_tsvector('english', coalesce(model_card ->> 'description', '')), 'B')
        || setweight(to_tsvector('english',
               coalesce(model_card ->> 'intended_use', '') || ' '
               || coalesce(model_card ->> 'limitations', '')), 'C')
        || setweight(to_tsvector('english',
               framework || ' ' || coalesce(model_card ->> 'license', '') || ' '
               || coalesce(lineage ->> 'training_run', '')), 'D')
        || setweight(jsonb_to_tsvector('english', tags, '["string"]'), 'D')
    ) STORED;

CREATE INDEX model_versions_search ON model_versions USING gin (search);
CREATE INDEX model_versions_tags ON model_versions USING gin (tags jsonb_path_ops);
-- One btree per keyset order, and per selective filter followed by the default order.
CREATE INDEX model_versions_registered ON model_versions (registered_at, model_name, version);
CREATE INDEX model_versions_updated ON model_versions (updated_at, model_name, version);
CREATE INDEX model_versions_state ON model_versions (state, registered_at, model_name, version);
CREATE INDEX model_versions_risk ON model_versions (risk_tier, registered_at, model_name, version);
CREATE INDEX model_versions_framework
    ON model_versions (framework, registered_at, model_name, version);
CREATE INDEX model_versions_training_run ON model_versions ((lineage ->> 'training_run'));
-- Filters are correlated (a risk tier's versions are not spread evenly over states):
-- without these statistics the planner walks the whole time index for a rare combination.
CREATE STATISTICS model_versions_filters (mcv, dependencies)
    ON state, risk_tier, framework FROM model_versions;

-- Tags may now change (each change is logged in catalog_changes with old and new value);
-- everything else that was registered still may not.
CREATE OR REPLACE FUNCTION model_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'model version %/% cannot be deleted; retire it instead',
            OLD.model_name, OLD.version;
    END IF;
    IF (NEW.model_name, NEW.version, NEW.artifact_uri, NEW.artifact_digest, NEW.framework,
        NEW.signature, NEW.model_card, NEW.lineage, NEW.request_id,
        NEW.request_hash, NEW.registered_by, NEW.registered_by_name,
        NEW.registered_event_id, NEW.registered_at)
       IS DISTINCT FROM
       (OLD.model_name, OLD.version, OLD.artifact_uri, OLD.artifact_digest, OLD.framework,
        OLD.signature, OLD.model_card, OLD.lineage, OLD.request_id,
        OLD.request_hash, OLD.registered_by, OLD.registered_by_name,
        OLD.registered_event_id, OLD.registered_at) THEN
        RAISE EXCEPTION 'model version %/% is immutable except for its state and annotations',
            OLD.model_name, OLD.version;
    END IF;
    RETURN NEW;
END $$;

-- Aliases: a name (e.g. champion) pointing to one version of the model. A protected
-- alias points only to an approved or deployed version (enforced by the catalog, and
-- released when that version leaves those states).
CREATE TABLE aliases (
    model_name      text NOT NULL REFERENCES models (name),
    alias           text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]{0,63}$'),
    version         int NOT NULL,
    protected       boolean NOT NULL,
    revision        int NOT NULL DEFAULT 1 CHECK (revision >= 1),
    updated_by      text NOT NULL,
    updated_by_name text NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (model_name, alias),
    FOREIGN KEY (model_name, version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX aliases_version ON aliases (model_name, version);

-- Append-only history of every metadata change: model created or edited, version
-- annotations edited, alias set, moved or removed; old and new values per field, the
-- actor, the reason, and the id of the event that announced it.
CREATE TABLE catalog_changes (
    id          bigserial PRIMARY KEY,
    model_name  text NOT NULL,
    version     int,
    alias       text,
    action      text NOT NULL CHECK (action IN (
                    'model_created', 'model_updated', 'version_updated',
                    'alias_set', 'alias_moved', 'alias_removed')),
    changes     jsonb NOT NULL,
    reason      text,
    actor       text NOT NULL,
    actor_name  text NOT NULL,
    event_id    text NOT NULL UNIQUE,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX catalog_changes_model ON catalog_changes (model_name, id);

CREATE TRIGGER catalog_changes_append_only BEFORE UPDATE OR DELETE ON catalog_changes
    FOR EACH ROW EXECUTE FUNCTION state_transitions_append_only();
CREATE TRIGGER catalog_changes_no_truncate BEFORE TRUNCATE ON catalog_changes
    FOR EACH STATEMENT EXECUTE FUNCTION state_transitions_append_only();
