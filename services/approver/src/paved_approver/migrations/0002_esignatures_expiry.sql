-- Part 11 e-signatures with SSO, separation of duties by role, team scoping, expiry.

-- What a signature covers, kept so it can be re-hashed at verification.
ALTER TABLE versions ADD COLUMN version_document jsonb;

-- Owner team of each registered model (from RegisteredModelCreated/Updated).
CREATE TABLE models (
    model_name  text PRIMARY KEY,
    owner_team  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A version can have several cases over time: a granted approval that expires sends the
-- version back to validation, and the next passed validation opens a new case. At most
-- one case per version is open (pending or granted) at any time, and one validation
-- event never opens two cases (replays stay idempotent).
ALTER TABLE approvals DROP CONSTRAINT approvals_model_name_version_key;
ALTER TABLE approvals DROP CONSTRAINT approvals_state_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_state_check
    CHECK (state IN ('pending', 'granted', 'rejected', 'closed', 'expired'));
ALTER TABLE approvals ADD COLUMN opened_by_event_id text;
ALTER TABLE approvals ADD COLUMN eligible_roles text[] NOT NULL DEFAULT '{approver}';
ALTER TABLE approvals ADD COLUMN valid_for_s bigint CHECK (valid_for_s IS NULL OR valid_for_s > 0);
ALTER TABLE approvals ADD COLUMN expires_at timestamptz;
ALTER TABLE approvals ADD COLUMN expired_at timestamptz;
ALTER TABLE approvals ADD COLUMN policy_digest text;
CREATE UNIQUE INDEX approvals_one_open_case ON approvals (model_name, version)
    WHERE state IN ('pending', 'granted');
CREATE UNIQUE INDEX approvals_one_case_per_validation ON approvals (opened_by_event_id);
CREATE INDEX approvals_due ON approvals (expires_at) WHERE state = 'granted';

-- The signature record (11.50, 11.70): id, the signer's roles and login at signing time,
-- and a seal (Ed25519 over the canonical record) so it cannot be altered or moved.
ALTER TABLE signatures ADD COLUMN signature_id text UNIQUE;
ALTER TABLE signatures ADD COLUMN signer_roles text[] NOT NULL DEFAULT '{}';
ALTER TABLE signatures ADD COLUMN auth_mode text NOT NULL DEFAULT 'dev-headers';
ALTER TABLE signatures ADD COLUMN auth_time timestamptz;
ALTER TABLE signatures ADD COLUMN issuer text;
ALTER TABLE signatures ADD COLUMN policy_version text;
ALTER TABLE signatures ADD COLUMN seal_key_id text;
ALTER TABLE signatures ADD COLUMN seal text;

-- Keys sealing signature records. Dev/test generate one here; staging/prod configure
-- a key file and this table only lists public keys (private_pem stays null).
CREATE TABLE seal_keys (
    key_id       text PRIMARY KEY,
    public_pem   text NOT NULL,
    private_pem  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
