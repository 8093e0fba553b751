-- GenAI versions get a gateway route when ready (ModelVersionRegistered.model_card.genai).
ALTER TABLE model_versions ADD COLUMN genai boolean NOT NULL DEFAULT false;

-- What serves traffic now: a list of {revision, weight, handle, model_name, version,
-- artifact_digest, spec}. A rollout adds its revision here only once it is ready; a
-- failed rollout leaves it untouched (rollback); `handle` is now the in-flight revision.
ALTER TABLE deployments ADD COLUMN serving jsonb NOT NULL DEFAULT '[]'::jsonb;
-- The deployment's endpoint (local: the router process; Kubernetes: the Service).
ALTER TABLE deployments ADD COLUMN endpoint jsonb;
ALTER TABLE deployments ADD COLUMN genai boolean NOT NULL DEFAULT false;

-- Rows written by the walking skeleton: a ready deployment's handle was its one server.
UPDATE deployments SET
    serving = jsonb_build_array(jsonb_build_object(
        'revision', revision, 'weight', 100, 'handle', handle, 'model_name', model_name,
        'version', version, 'artifact_digest', artifact_digest, 'spec', spec)),
    handle = NULL
WHERE status = 'ready' AND handle IS NOT NULL;
