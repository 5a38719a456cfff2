-- The seed's flag, deployed OFF (Phase 1: "Deploy with feature flag defaulting to OFF").
SET LOCAL rollgate.actor = 'rollgate-migrations';
SET LOCAL rollgate.source = 'migration';
INSERT INTO flags (key, description)
VALUES ('multi_workspace_enabled', 'Multi-workspace support: several workspaces per tenant.');
INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', NULL, false);
