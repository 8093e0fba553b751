-- One row per validated model version: the result and where its evidence is.
CREATE TABLE validations (
    validation_id          uuid PRIMARY KEY,
    model_name             text NOT NULL,
    version                integer NOT NULL CHECK (version >= 1),
    artifact_digest        text NOT NULL,
    observed_digest        text,
    passed                 boolean NOT NULL,
    reasons                jsonb NOT NULL,
    checks                 jsonb NOT NULL,
    evidence_uri           text NOT NULL,
    evidence_digest        text NOT NULL,
    validator_version      text NOT NULL,
    registration_event_id  text NOT NULL,
    result_event_id        text NOT NULL,
    started_at             timestamptz NOT NULL,
    finished_at            timestamptz NOT NULL,
    recorded_at            timestamptz NOT NULL DEFAULT now(),
    -- A version's digest is immutable, so one result per version; a redelivered or
    -- re-sent registration never produces a second one.
    CONSTRAINT validations_one_per_version UNIQUE (model_name, version)
);
