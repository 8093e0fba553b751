-- Transactional outbox: a service writes its state change and the event in one
-- transaction; the relay publishes rows in seq order and marks them sent.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    topic        text NOT NULL,
    key          bytea,
    value        bytea NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     int NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Wake the relay as soon as a row commits (it also polls, so a lost notify only delays).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('paved_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotent consumers: the id of every applied event, written in the same
-- transaction as its effect, so a redelivery after a crash is recognised.
CREATE TABLE processed_events (
    consumer_group text NOT NULL,
    event_id       text NOT NULL,
    event_type     text NOT NULL,
    topic          text NOT NULL,
    kafka_partition int NOT NULL,
    kafka_offset   bigint NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);
