-- The audit chain: one row per sealed lifecycle event, append-only, hash-chained.
-- record_hash = sha256(decode(prev_hash, 'hex') || record); see paved_audit.domain.chain.
CREATE TABLE audit_records (
    sequence         bigint PRIMARY KEY CHECK (sequence >= 0),
    event_id         text NOT NULL UNIQUE,
    event_type       text NOT NULL,
    subject          text,
    event_time       timestamptz NOT NULL,
    source_topic     text NOT NULL,
    source_partition int NOT NULL CHECK (source_partition >= 0),
    source_offset    bigint NOT NULL CHECK (source_offset >= 0),
    record           bytea NOT NULL,  -- RFC 8785 canonical JSON of the envelope, exactly as hashed
    prev_hash        text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    record_hash      text NOT NULL UNIQUE CHECK (record_hash ~ '^[0-9a-f]{64}$'),
    sealed_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE audit_records IS
    'Append-only, hash-chained audit trail (21 CFR Part 11 §11.10(e)). UPDATE, DELETE and '
    'TRUNCATE are refused by triggers for every role, the owner included.';

-- Defence in depth: the database itself refuses an append that does not extend the
-- chain (next dense sequence, prev_hash = current head, record_hash recomputed), so
-- not even a hand-written INSERT can splice a record in. Appenders still serialise
-- on an advisory lock; without it the primary key turns a race into an error.
CREATE FUNCTION audit_records_check_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_sequence bigint;
    head_hash text;
    expected_hash text;
BEGIN
    EXECUTE format('SELECT sequence, record_hash FROM %I.%I ORDER BY sequence DESC LIMIT 1',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO head_sequence, head_hash;
    IF head_sequence IS NULL THEN
        head_sequence := -1;
        head_hash := repeat('0', 64);
    END IF;
    IF NEW.sequence <> head_sequence + 1 THEN
        RAISE EXCEPTION 'audit chain: sequence % is not the next one (%)',
            NEW.sequence, head_sequence + 1 USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.prev_hash <> head_hash THEN
        RAISE EXCEPTION 'audit chain: prev_hash % of sequence % is not the head hash %',
            NEW.prev_hash, NEW.sequence, head_hash USING ERRCODE = 'check_violation';
    END IF;
    expected_hash := encode(sha256(decode(NEW.prev_hash, 'hex') || NEW.record), 'hex');
    IF NEW.record_hash <> expected_hash THEN
        RAISE EXCEPTION 'audit chain: record_hash % of sequence % should be %',
            NEW.record_hash, NEW.sequence, expected_hash USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_records_check_link BEFORE INSERT ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_check_link();

-- Append-only, for every role: the owner bypasses grants, not triggers.
CREATE FUNCTION audit_records_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % refused (audit records can never be changed or removed)',
        TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a correction as a new event; the audit trail keeps both.';
END $$;

CREATE TRIGGER audit_records_no_update_delete BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_refuse_change();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_records FROM PUBLIC;
