-- Gap records and signed checkpoints (see paved_audit.domain.checkpoint, docs/audit.md).

-- A sealed DeadLetterRecorded is a gap: a message some consumer could not process.
-- Derived from the sealed event's type, so it can never disagree with the record.
ALTER TABLE audit_records ADD COLUMN kind text GENERATED ALWAYS AS (
    CASE WHEN event_type = 'dev.paved.deadletter.recorded.v1' THEN 'gap' ELSE 'event' END
) STORED;
CREATE INDEX audit_records_gaps ON audit_records (sequence) WHERE kind = 'gap';
CREATE INDEX audit_records_subject ON audit_records (subject, sequence);

-- One row per signed checkpoint, append-only like the records.
CREATE TABLE audit_checkpoints (
    checkpoint_index bigint PRIMARY KEY CHECK (checkpoint_index >= 0),
    tree_size        bigint NOT NULL UNIQUE CHECK (tree_size >= 0),
    root_hash        text NOT NULL CHECK (root_hash ~ '^[0-9a-f]{64}$'),
    chain_head       text NOT NULL CHECK (chain_head ~ '^[0-9a-f]{64}$'),
    key_id           text NOT NULL,
    signed_body      bytea NOT NULL,  -- RFC 8785 JSON, exactly the signed bytes
    signature        bytea NOT NULL CHECK (octet_length(signature) = 64),
    public_key       bytea NOT NULL CHECK (octet_length(public_key) = 32),
    frontier         jsonb NOT NULL,  -- perfect-subtree roots at tree_size (derivable, not signed)
    issued_at        timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE audit_checkpoints IS
    'Signed checkpoints (RFC 6962 root + chain head) of audit_records; append-only.';

-- Dense indexes, growing sizes: a checkpoint can only extend the last one.
CREATE FUNCTION audit_checkpoints_check_next() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_index bigint;
    last_size bigint;
BEGIN
    EXECUTE format('SELECT checkpoint_index, tree_size FROM %I.%I '
                   'ORDER BY checkpoint_index DESC LIMIT 1', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO last_index, last_size;
    IF last_index IS NULL THEN
        RETURN NEW;  -- the first row: checkpoint 0, or the anchor of a replay (--since)
    END IF;
    IF NEW.checkpoint_index <> last_index + 1 THEN
        RAISE EXCEPTION 'audit checkpoint: index % is not the next one (%)',
            NEW.checkpoint_index, last_index + 1 USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.tree_size <= last_size THEN
        RAISE EXCEPTION 'audit checkpoint: size % does not grow past %',
            NEW.tree_size, last_size USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_checkpoints_check_next BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_check_next();
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_records_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints FROM PUBLIC;

-- A store rebuilt from a checkpoint onwards (`paved audit replay --since`) starts at that
-- checkpoint instead of at sequence 0: an empty table accepts as its first row the record
-- that extends a stored checkpoint (sequence = its tree_size, prev_hash = its chain head).
CREATE OR REPLACE FUNCTION audit_records_check_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_sequence bigint;
    head_hash text;
    expected_hash text;
    anchored boolean;
BEGIN
    EXECUTE format('SELECT sequence, record_hash FROM %I.%I ORDER BY sequence DESC LIMIT 1',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO head_sequence, head_hash;
    IF head_sequence IS NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.audit_checkpoints '
                       'WHERE tree_size = $1 AND chain_head = $2 AND tree_size > 0)',
                       TG_TABLE_SCHEMA)
            INTO anchored USING NEW.sequence, NEW.prev_hash;
        IF anchored THEN
            head_sequence := NEW.sequence - 1;
            head_hash := NEW.prev_hash;
        ELSE
            head_sequence := -1;
            head_hash := repeat('0', 64);
        END IF;
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
