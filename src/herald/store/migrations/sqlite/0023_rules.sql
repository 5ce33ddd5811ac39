-- Rules and alerts (issue 35). A rule selects events with the q syntax, groups them (by
-- endpoint, SIM, user, target or the whole organisation) and holds one condition (JSON:
-- count, absence, state or threshold). revision counts its edits: the evaluator writes a
-- group's state only for the revision it read. after_seq: the log position when it was made
-- or last changed; it sees only later events.
CREATE TABLE rules (
    id              BIGINT PRIMARY KEY,
    organisation_id BIGINT NOT NULL,
    name            TEXT NOT NULL,
    q               TEXT NOT NULL,
    group_by        TEXT NOT NULL,
    condition       TEXT NOT NULL,
    hold_down_ms    BIGINT NOT NULL,
    enabled         INTEGER NOT NULL,
    revision        BIGINT NOT NULL,
    after_seq       BIGINT NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX rules_organisation ON rules (organisation_id, id);

-- Each rule's groups: the condition's working state (JSON), whether it fires, since when,
-- and when time alone may change it (due_ms: the timer pass reads the groups due).
CREATE TABLE rule_groups (
    rule_id         BIGINT NOT NULL,
    group_key       TEXT NOT NULL,
    organisation_id BIGINT NOT NULL,
    firing          INTEGER NOT NULL,
    episode         BIGINT NOT NULL,
    fired_ms        BIGINT,
    held_until_ms   BIGINT NOT NULL,
    due_ms          BIGINT,
    state           TEXT NOT NULL,
    PRIMARY KEY (organisation_id, rule_id, group_key)  -- as on PostgreSQL
);
CREATE INDEX rule_groups_rule ON rule_groups (rule_id, group_key);  -- by rule alone
CREATE INDEX rule_groups_due ON rule_groups (due_ms);
CREATE INDEX rule_groups_firing ON rule_groups (organisation_id, firing);

-- The evaluator's position in the log (compare and set: two processes evaluating at once
-- never both write a step).
CREATE TABLE rule_position (
    name       TEXT PRIMARY KEY,
    cursor_seq BIGINT NOT NULL
);
INSERT INTO rule_position (name, cursor_seq) VALUES ('rules', 0);
