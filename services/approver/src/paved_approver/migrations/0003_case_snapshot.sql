-- Separation of duties reads only facts frozen into the case (issue 11): the owner team
-- the model had when the registry registered the version (copied into the case when it
-- opens) and the registrant named by that registration. A later owner change (moving a
-- model into an approver's team, signing, moving it back) changes neither who sees nor
-- who may sign an open case; the next case of the version opens with the snapshot again.
ALTER TABLE versions ADD COLUMN owner_team text;
ALTER TABLE approvals ADD COLUMN owner_team text;

-- Cases and versions recorded before this migration take the owner team known now.
UPDATE versions v SET owner_team = m.owner_team
    FROM models m WHERE m.model_name = v.model_name AND v.registered_event_id IS NOT NULL;
UPDATE approvals a SET owner_team = m.owner_team
    FROM models m WHERE m.model_name = a.model_name;

CREATE INDEX approvals_by_owner_team ON approvals (owner_team, created_at DESC);
