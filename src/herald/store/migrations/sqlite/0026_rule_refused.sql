-- The groups a rule refused (issue 35): a rule tracks at most HERALD_MAX_GROUPS_PER_RULE
-- groups; the events of any other are not evaluated. Each refused group is kept once, with
-- when it was first refused (at most as many as the limit per rule), so that the rule shows
-- how many it refused and since when; a change of the rule forgets them with its groups.
CREATE TABLE rule_refused (
    organisation_id BIGINT NOT NULL,
    rule_id         BIGINT NOT NULL,
    group_key       TEXT NOT NULL,
    refused_ms      BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, rule_id, group_key)
);
CREATE INDEX rule_refused_rule ON rule_refused (rule_id, refused_ms);
