-- The registry's catalog: models, their versions (immutable artifact digest), the
-- append-only history of lifecycle transitions, and deployments of versions.

CREATE TABLE models (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
    description     text NOT NULL DEFAULT '',
    owner_team      text NOT NULL,
    tags            jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- 'api' (POST /models) or 'registration' (created implicitly by a RegisterModelVersion
    -- command from a pipeline, which does not pre-create models).
    created_via     text NOT NULL CHECK (created_via IN ('api', 'registration')),
    created_by      text NOT NULL,
    created_by_name text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
    model_name          text NOT NULL REFERENCES models (name),
    version             int NOT NULL CHECK (version >= 1),
    state               text NOT NULL CHECK (state IN (
                            'registered', 'validating', 'validated', 'validation_failed',
                            'pending_approval', 'approved', 'rejected', 'deployed',
                            'deprecated', 'retired')),
    artifact_uri        text NOT NULL,
    artifact_digest     text NOT NULL CHECK (artifact_digest ~ '^sha256:[0-9a-f]{64}$'),
    framework           text NOT NULL,
    signature           jsonb NOT NULL,
    model_card          jsonb NOT NULL,
    lineage             jsonb,
    tags                jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Idempotency key of the registration (HTTP Idempotency-Key or the command's request_id)
    -- and the SHA-256 of the request it came with, to tell a replay from a conflict.
    request_id          text NOT NULL UNIQUE,
    request_hash        text NOT NULL,
    registered_by       text NOT NULL,
    registered_by_name  text NOT NULL,
    registered_event_id text NOT NULL UNIQUE,
    registered_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (model_name, version)
);

-- What was registered never changes: only state and updated_at may be updated, and
-- versions are never deleted (21 CFR Part 11: records are kept, not overwritten).
CREATE FUNCTION model_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'model version %/% cannot be deleted; retire it instead',
            OLD.model_name, OLD.version;
    END IF;
    IF (NEW.model_name, NEW.version, NEW.artifact_uri, NEW.artifact_digest, NEW.framework,
        NEW.signature, NEW.model_card, NEW.lineage, NEW.tags, NEW.request_id,
        NEW.request_hash, NEW.registered_by, NEW.registered_by_name,
        NEW.registered_event_id, NEW.registered_at)
       IS DISTINCT FROM
       (OLD.model_name, OLD.version, OLD.artifact_uri, OLD.artifact_digest, OLD.framework,
        OLD.signature, OLD.model_card, OLD.lineage, OLD.tags, OLD.request_id,
        OLD.request_hash, OLD.registered_by, OLD.registered_by_name,
        OLD.registered_event_id, OLD.registered_at) THEN
        RAISE EXCEPTION 'model version %/% is immutable except for its state',
            OLD.model_name, OLD.version;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER model_versions_guard BEFORE UPDATE OR DELETE ON model_versions
    FOR EACH ROW EXECUTE FUNCTION model_versions_guard();

-- Append-only history: one row per lifecycle transition, with the id of the
-- ModelVersionStateChanged event that announced it.
CREATE TABLE state_transitions (
    id             bigserial PRIMARY KEY,
    model_name     text NOT NULL,
    version        int NOT NULL,
    from_state     text,
    to_state       text NOT NULL,
    reason         text,
    actor          text NOT NULL,
    actor_name     text NOT NULL,
    event_id       text NOT NULL UNIQUE,
    cause_event_id text,
    occurred_at    timestamptz NOT NULL,
    FOREIGN KEY (model_name, version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX state_transitions_version ON state_transitions (model_name, version, id);

CREATE FUNCTION state_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'state_transitions is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER state_transitions_append_only BEFORE UPDATE OR DELETE ON state_transitions
    FOR EACH ROW EXECUTE FUNCTION state_transitions_append_only();
CREATE TRIGGER state_transitions_no_truncate BEFORE TRUNCATE ON state_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION state_transitions_append_only();

-- Deployments of versions: requested through the API (status 'requested' until a
-- deployer reports) or first seen in a DeploymentStatusChanged.
CREATE TABLE deployments (
    deployment_id    text PRIMARY KEY,
    model_name       text NOT NULL,
    version          int NOT NULL,
    artifact_digest  text NOT NULL,
    target           text NOT NULL CHECK (target IN ('local', 'aws', 'gcp')),
    spec             jsonb,
    status           text NOT NULL CHECK (status IN (
                         'requested', 'pending', 'provisioning', 'ready', 'failed',
                         'rolled_back', 'retired')),
    revision         int,
    endpoint_url     text,
    reason           text,
    requested_by     text,
    requested_at     timestamptz,
    request_event_id text,
    updated_at       timestamptz NOT NULL,
    FOREIGN KEY (model_name, version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX deployments_version ON deployments (model_name, version);
