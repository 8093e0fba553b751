-- What the approver knows about each model version. Registration and validation
-- arrive on different topics in any order: each fills its own columns, and the
-- approval case opens once both are present and validation passed.
CREATE TABLE versions (
    model_name          text NOT NULL,
    version             int NOT NULL CHECK (version >= 1),
    -- from ModelVersionRegistered (null until it arrives)
    artifact_digest     text,
    risk_tier           text CHECK (risk_tier IN ('low', 'medium', 'high', 'critical')),
    version_hash        text,
    registered_by       text,
    registered_by_name  text,
    registered_event_id text,
    registered_at       timestamptz,
    -- from the latest ModelVersionValidated (null until one arrives)
    validation_passed   boolean,
    validated_digest    text,
    evidence_digest     text,
    validated_event_id  text,
    validated_at        timestamptz,
    -- from ModelVersionRetired
    retired_at          timestamptz,
    retired_reason      text,
    retired_event_id    text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version),
    CHECK ((registered_event_id IS NULL) = (version_hash IS NULL))
);

-- One approval case per model version; its facts are a snapshot taken when it opened.
CREATE TABLE approvals (
    approval_id         text PRIMARY KEY,
    model_name          text NOT NULL,
    version             int NOT NULL,
    artifact_digest     text NOT NULL,
    version_hash        text NOT NULL,
    risk_tier           text NOT NULL CHECK (risk_tier IN ('low', 'medium', 'high', 'critical')),
    registered_by       text NOT NULL,
    registered_by_name  text NOT NULL,
    policy_version      text NOT NULL,
    required_approvals  int NOT NULL CHECK (required_approvals >= 0),
    required_roles      text[] NOT NULL DEFAULT '{}',
    state               text NOT NULL CHECK (state IN ('pending', 'granted', 'rejected', 'closed')),
    auto_approved       boolean NOT NULL DEFAULT false,
    correlation_id      text NOT NULL,
    requested_event_id  text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    decided_at          timestamptz,
    closed_reason       text,
    UNIQUE (model_name, version),
    FOREIGN KEY (model_name, version) REFERENCES versions (model_name, version),
    CHECK ((state = 'pending') = (decided_at IS NULL))
);
CREATE INDEX approvals_by_state ON approvals (state, created_at DESC);

-- E-signatures (21 CFR 11.50/11.70): append-only, one per person per approval.
CREATE TABLE signatures (
    seq           bigserial PRIMARY KEY,
    approval_id   text NOT NULL REFERENCES approvals (approval_id),
    signer_id     text NOT NULL CHECK (length(signer_id) > 0),
    printed_name  text NOT NULL CHECK (length(printed_name) > 0),
    signed_at     timestamptz NOT NULL,
    meaning       text NOT NULL CHECK (meaning IN ('approval', 'review', 'responsibility', 'rejection')),
    reason        text NOT NULL CHECK (length(btrim(reason)) > 0),
    version_hash  text NOT NULL,
    UNIQUE (approval_id, signer_id)
);

CREATE FUNCTION signatures_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signatures are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER signatures_no_update_delete BEFORE UPDATE OR DELETE ON signatures
    FOR EACH ROW EXECUTE FUNCTION signatures_append_only();
CREATE TRIGGER signatures_no_truncate BEFORE TRUNCATE ON signatures
    FOR EACH STATEMENT EXECUTE FUNCTION signatures_append_only();
