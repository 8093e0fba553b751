-- The latest validation result per (model, version, digest), from ModelVersionValidated.
-- Admission needs passed = true here as well as an approval (ADR 0012). Results of one
-- model arrive in order (one key, one partition): a later result replaces an earlier one.
CREATE TABLE validations (
    model_name      text NOT NULL,
    version         int NOT NULL,
    artifact_digest text NOT NULL,
    passed          boolean NOT NULL,
    reasons         text,
    evidence_digest text NOT NULL,
    event_id        text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version, artifact_digest)
);
