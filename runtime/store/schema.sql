-- The flowlord store, schema version 1 (PRAGMA user_version).
-- Applied by flowlord.runtime.store (database.py) to a database whose user_version is 0; later versions
-- add numbered upgrade steps in database._UPGRADES instead of editing this file's tables in place.
-- Version 2 (database._UPGRADES[2]) adds schedule_state: each cron phase's last handled fire time.
-- Version 3 (database._UPGRADES[3]) adds notifications (the outbox) and ops_state.
--
-- Times written by flowlord (recorded_at, due_at, received_at, loaded_at, sent_at, alert created)
-- are ISO 8601 UTC text with milliseconds, e.g. 2024-01-15T00:00:00.000Z. Task times
-- (created, started, ended) are the task's RFC 3339 strings, normalised to UTC whole seconds
-- (2024-01-15T00:00:00Z) when they parse, else kept as sent. Both sort as time; retention
-- compares them with julianday(), as timestamps.

-- Every task sent (event 'sent') and every done message received (event 'done').
CREATE TABLE tasks (
    seq         INTEGER PRIMARY KEY,          -- insertion order: the dashboard's cursor
    event       TEXT    NOT NULL CHECK (event IN ('sent', 'done')),
    id          TEXT    NOT NULL DEFAULT '',
    type        TEXT    NOT NULL,
    job         TEXT    NOT NULL DEFAULT '',
    info        TEXT    NOT NULL DEFAULT '',
    meta        TEXT    NOT NULL DEFAULT '',
    result      TEXT    NOT NULL DEFAULT '',
    msg         TEXT    NOT NULL DEFAULT '',
    created     TEXT    NOT NULL DEFAULT '',
    started     TEXT    NOT NULL DEFAULT '',
    ended       TEXT    NOT NULL DEFAULT '',
    workflow    TEXT    NOT NULL DEFAULT '',
    phase       TEXT    NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 0,
    topic       TEXT    NOT NULL DEFAULT '',  -- where a sent task went (its type, or the failed topic)
    digest      BLOB,                          -- done messages: hash of the message, to spot redeliveries
    recorded_at TEXT    NOT NULL
) STRICT;
CREATE INDEX tasks_by_created  ON tasks (created);
CREATE INDEX tasks_by_type_job ON tasks (type, job, created);
CREATE INDEX tasks_by_id       ON tasks (id, seq);
CREATE INDEX tasks_by_recorded ON tasks (recorded_at);
CREATE UNIQUE INDEX tasks_done_once ON tasks (digest) WHERE digest IS NOT NULL;

-- Retries (and other delayed sends) not yet sent. Written before the done message that caused
-- them is acked; deleted once sent. Never expired by retention.
CREATE TABLE pending_retries (
    rid         INTEGER PRIMARY KEY AUTOINCREMENT,
    task        TEXT    NOT NULL,              -- the task JSON to send
    topic       TEXT    NOT NULL,
    due_at      TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    workflow    TEXT    NOT NULL DEFAULT '',
    phase       TEXT    NOT NULL DEFAULT '',
    recorded_at TEXT    NOT NULL
) STRICT;
CREATE INDEX pending_retries_by_due ON pending_retries (due_at, rid);

CREATE TABLE alerts (
    aid         INTEGER PRIMARY KEY,
    task_id     TEXT    NOT NULL DEFAULT '',
    type        TEXT    NOT NULL DEFAULT '',
    job         TEXT    NOT NULL DEFAULT '',
    workflow    TEXT    NOT NULL DEFAULT '',
    phase       TEXT    NOT NULL DEFAULT '',
    result      TEXT    NOT NULL DEFAULT '',
    msg         TEXT    NOT NULL DEFAULT '',
    task_time   TEXT    NOT NULL DEFAULT '',   -- the task's created, for summaries
    created     TEXT    NOT NULL,              -- when the alert was raised
    sent_at     TEXT                           -- when a notification carried it; NULL until then
) STRICT;
CREATE INDEX alerts_by_created ON alerts (created);
CREATE INDEX alerts_unsent     ON alerts (aid) WHERE sent_at IS NULL;

-- Messages on the files topic, with the tasks they started.
CREATE TABLE file_messages (
    fid         INTEGER PRIMARY KEY,
    path        TEXT    NOT NULL DEFAULT '',
    size        INTEGER NOT NULL DEFAULT 0,
    message     TEXT    NOT NULL DEFAULT '',
    task_ids    TEXT    NOT NULL DEFAULT '[]',  -- JSON array of the ids of the tasks started
    received_at TEXT    NOT NULL
) STRICT;
CREATE INDEX file_messages_by_received ON file_messages (received_at);
CREATE INDEX file_messages_by_path     ON file_messages (path);

-- The phases of each workflow as last loaded, with their diagnostics.
CREATE TABLE phases (
    workflow    TEXT    NOT NULL,
    phase_id    TEXT    NOT NULL,
    position    INTEGER NOT NULL DEFAULT 0,
    topic       TEXT    NOT NULL,
    job         TEXT    NOT NULL DEFAULT '',
    rule        TEXT    NOT NULL DEFAULT '',
    template    TEXT    NOT NULL DEFAULT '',
    depends_on  TEXT    NOT NULL DEFAULT '',
    diagnostics TEXT    NOT NULL DEFAULT '[]',  -- JSON array
    loaded_at   TEXT    NOT NULL,
    PRIMARY KEY (workflow, phase_id)
) STRICT;

-- Bad input that was recorded and skipped (not JSON, no type, unknown result, too large, ...).
CREATE TABLE rejected (
    xid         INTEGER PRIMARY KEY,
    topic       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,               -- a short slug: not-json, missing-type, unknown-result, ...
    detail      TEXT    NOT NULL DEFAULT '',    -- the specifics, for people
    raw         BLOB    NOT NULL,               -- the message as received, cut to 64 KiB
    size        INTEGER NOT NULL,               -- its whole size
    received_at TEXT    NOT NULL
) STRICT;
CREATE INDEX rejected_by_received ON rejected (received_at);

PRAGMA user_version = 1;
