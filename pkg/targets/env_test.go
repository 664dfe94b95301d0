package targets

// The environment variables the tests set, by name (package settings
// reads them).
const (
	envConfig       = "HOIST_CONFIG"
	envDryRun       = "HOIST_DRY_RUN"
	envGitHubAPI    = "HOIST_GITHUB_API"
	envGitHubRepo   = "HOIST_GITHUB_REPO"
	envNoEngineUp   = "HOIST_NO_ENGINE_SETUP"
	envOutput       = "GITHUB_OUTPUT"
	envOverride     = "HOIST_VERSION_OVERRIDE"
	envPR           = "HOIST_PR"
	envRef          = "GITHUB_REF"
	envRegistry     = "HOIST_REGISTRY"
	envRegistryPass = "HOIST_REGISTRY_PASSWORD"
	envRegistryUser = "HOIST_REGISTRY_USERNAME"
	envStepSummary  = "GITHUB_STEP_SUMMARY"
	envTrivyDB      = "HOIST_TRIVY_DB"
	envVersion      = "HOIST_VERSION"
)
