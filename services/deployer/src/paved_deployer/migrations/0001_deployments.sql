-- What the deployer knows about model versions, from ModelVersionRegistered.
CREATE TABLE model_versions (
    model_name      text NOT NULL,
    version         int NOT NULL,
    artifact_uri    text NOT NULL,
    artifact_digest text NOT NULL,
    framework       text NOT NULL,
    signature       jsonb NOT NULL,
    event_id        text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);

-- ModelVersionRetired: a retired version is never deployed again.
CREATE TABLE retired_versions (
    model_name  text NOT NULL,
    version     int NOT NULL,
    reason      text NOT NULL,
    retired_by  text NOT NULL,
    event_id    text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);

-- The latest approval decision per (model, version, digest): granted -> approved;
-- rejected/expired -> revoked. Events of one model arrive in order (one key, one partition).
CREATE TABLE approvals (
    model_name      text NOT NULL,
    version         int NOT NULL,
    artifact_digest text NOT NULL,
    state           text NOT NULL CHECK (state IN ('approved', 'revoked')),
    approval_id     text NOT NULL,
    reason          text,
    expires_at      timestamptz,
    event_id        text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version, artifact_digest)
);

-- Desired state (desired) and actual state (status, handle) of each deployment.
CREATE TABLE deployments (
    deployment_id   text PRIMARY KEY,
    target          text NOT NULL,
    model_name      text NOT NULL,
    version         int NOT NULL,
    artifact_digest text NOT NULL,
    spec            jsonb NOT NULL,
    requested_by    text NOT NULL,
    desired         text NOT NULL CHECK (desired IN ('running', 'stopped')),
    status          text NOT NULL CHECK (status IN
                        ('pending', 'provisioning', 'ready', 'failed', 'rolled_back', 'retired')),
    revision        int NOT NULL CHECK (revision >= 1),
    reason          text,
    stop_reason     text,
    endpoint_url    text,
    -- The serving resources of the current revision (local: pid, port, folder).
    handle          jsonb,
    -- Handles of replaced revisions still to be stopped.
    retiring        jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- The event that last changed the desired state; status events carry it as cause.
    correlation_id  text NOT NULL,
    causation_id    text NOT NULL,
    actor           text NOT NULL,
    actorname       text NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployments_by_version ON deployments (model_name, version);

-- Every published transition, with the event id that announced it.
CREATE TABLE deployment_transitions (
    seq           bigserial PRIMARY KEY,
    deployment_id text NOT NULL REFERENCES deployments (deployment_id),
    revision      int NOT NULL,
    from_status   text,
    to_status     text NOT NULL,
    reason        text,
    event_id      text NOT NULL UNIQUE,
    at            timestamptz NOT NULL DEFAULT now()
);
