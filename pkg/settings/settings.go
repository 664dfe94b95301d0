// Package settings is the one place Hoist's environment variables are
// named, documented and parsed. The targets read the environment once, with
// Read, and hand the typed Settings to the library; no other package looks
// at the environment. Vars is the table docs/targets.md must match.
package settings

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hoistci/hoist/pkg/shard"
	"github.com/hoistci/hoist/pkg/version"
)

// Secret is a value that never prints (passwords, tokens).
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// Settings are the environment's part of a run, read once.
type Settings struct {
	CI            bool   // CI=true: every pushing line needs a configured registry
	Config        string // hoist.yaml's path
	NoEngineSetup bool   // never install or start an engine
	PR            bool   // fork / pull-request mode: no secret, never push
	DryRun        bool
	Parallel      int // 0: the config's, else 2 × cores
	Images        []string
	Version       string // build this version instead of VERSION's
	Rebuild       bool
	Verbose       bool
	BuildkitHost  string
	// BuildkitCA, BuildkitCert and BuildkitKey replace builder's ca, cert
	// and key of hoist.yaml (files a CI job writes from its secrets).
	BuildkitCA, BuildkitCert, BuildkitKey string
	// DockerConfig is Docker's config folder, whose credentials builds
	// pull with (empty: ~/.docker).
	DockerConfig string
	// SSHAuthSock is the SSH agent an ssh entry of hoist.yaml with no
	// socket or keys forwards to builds.
	SSHAuthSock string
	SkipChecks  bool
	Unpack      bool
	GateRebuild bool

	// Registry is HOIST_REGISTRY split into host and repository.
	RegistryHost, RegistryRepository string
	RegistryUser                     string
	RegistryPassword                 Secret

	GitHubRepo, GitHubAPI string
	GitHubToken           Secret
	VersionOverride       string
	Ref                   string // GITHUB_REF
	Event                 string // GITHUB_EVENT_NAME: schedule picks the rebuild line
	Output                string // GITHUB_OUTPUT
	StepSummary           string // GITHUB_STEP_SUMMARY

	TrivyDB  string
	ToolsDir string
	Rescan   bool
	Project  string // init: the images' project

	// ShardIndex of ShardCount is this CI shard (HOIST_SHARD=I/K; 0: not
	// a shard). Fragments is the folder the join reads the shards'
	// fragments from (empty: the build folder's shards).
	ShardIndex, ShardCount int
	Fragments              string

	// SigningKey is the cosign key file Push signs attestations with
	// (empty: nothing is signed); SigningPassword decrypts it.
	SigningKey      string
	SigningPassword Secret
	// VerifyKey is the public key Verify checks with (overrides
	// attest.public_key); VerifyRefs are the images it checks (empty: the
	// lock file's pushed digests).
	VerifyKey  string
	VerifyRefs []string
	// IDTokenRequestURL and IDTokenRequestToken are what a GitHub Actions
	// job granted `id-token: write` asks its OIDC token with
	// (ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN): Push
	// signs keylessly with it when attest.keyless is set.
	IDTokenRequestURL   string
	IDTokenRequestToken Secret
	// CIBuilderID and CIRunURL name the CI workflow and run (GitHub
	// Actions), for provenance; empty outside CI.
	CIBuilderID, CIRunURL string

	// Environ is the whole environment, for the programs Hoist starts
	// (static checks, Trivy) and for values the config names (secrets).
	Environ []string
}

// String and GoString keep secrets out of any print of the settings
// (%v, %+v, %#v): Environ holds the whole environment, tokens included.
func (s Settings) String() string {
	return fmt.Sprintf("settings for %s (%d environment variables, not shown)", s.Config, len(s.Environ))
}

// GoString is String, for %#v.
func (s Settings) GoString() string { return s.String() }

// Lookup returns the value of one variable of Environ.
func (s *Settings) Lookup(key string) (string, bool) {
	for i := len(s.Environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(s.Environ[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Var is one environment variable Hoist reads.
type Var struct {
	Name string
	Doc  string
}

// Vars lists every variable Read looks at, in the order docs/targets.md
// shows them.
var Vars = []Var{
	{"HOIST_CONFIG", "the config file (default `hoist.yaml`)"},
	{"HOIST_PR", "`1`: fork / pull-request mode: no secret needed, nothing pushed, no shared cache written (also on when `GITHUB_EVENT_NAME` is `pull_request` or `pull_request_target`)"},
	{"HOIST_DRY_RUN", "`1`: print what would be done (Release prints its steps and what each would write), write nothing"},
	{"HOIST_PARALLEL", "concurrent work (solves, tests, scans, uploads); a positive number (default: `parallel` in hoist.yaml, else 2 × cores)"},
	{"HOIST_IMAGES", "`a,b`: only these images"},
	{"HOIST_VERSION", "build and push this version instead of VERSION's"},
	{"HOIST_REBUILD", "`1`: no cache; local bases re-made; remote bases pulled again"},
	{"HOIST_VERBOSE", "`1`: BuildKit's full progress"},
	{"BUILDKIT_HOST", "use this buildkitd instead of the engine's (replaces `builder.host` of hoist.yaml)"},
	{"HOIST_BUILDKIT_CA", "the CA file that signed the buildkitd's certificate (replaces `builder.ca`)"},
	{"HOIST_BUILDKIT_CERT", "this client's certificate file for the buildkitd (replaces `builder.cert`)"},
	{"HOIST_BUILDKIT_KEY", "this client's key file for the buildkitd (replaces `builder.key`); never printed"},
	{"DOCKER_CONFIG", "Docker's config folder (default `~/.docker`): builds pull private bases with its credentials and credential helpers, as docker build does"},
	{"SSH_AUTH_SOCK", "the SSH agent an `ssh:` entry of hoist.yaml with no socket or keys forwards to `RUN --mount=type=ssh`"},
	{"HOIST_NO_ENGINE_SETUP", "`1`: never install or start an engine"},
	{"HOIST_SKIP_CHECKS", "`1`: Test skips the static checks"},
	{"HOIST_UNPACK", "`1`: nodes unpack images at import (default: the kubelet unpacks on first use)"},
	{"HOIST_TRIVY_DB", "offline vulnerability DB folder (overrides `scan.db_dir`)"},
	{"HOIST_TOOLS_DIR", "where pinned tools are built (default: the user cache's `hoist/tools`)"},
	{"HOIST_RESCAN", "`1`: scan again images unchanged since their last scan"},
	{"HOIST_SIGNING_KEY", "Push signs the images and their attestations (provenance, tested, SBOM) with this cosign key file (`cosign generate-key-pair`) and attaches them; unset, nothing is signed"},
	{"HOIST_SIGNING_PASSWORD", "the signing key's password; never printed"},
	{"HOIST_VERIFY_KEY", "Verify checks signatures with this public key file (overrides `attest.public_key`)"},
	{"HOIST_VERIFY_REF", "`REF[,REF]`: Verify these images (`REPO@sha256:…` or `REPO:TAG`) instead of the lock file's pushed digests"},
	{"ACTIONS_ID_TOKEN_REQUEST_URL", "set by GitHub Actions in a job granted `id-token: write`: with `attest.keyless` in hoist.yaml, Push asks it for the job's OIDC token and signs keylessly (docs/attestations.md)"},
	{"ACTIONS_ID_TOKEN_REQUEST_TOKEN", "set by GitHub Actions with `ACTIONS_ID_TOKEN_REQUEST_URL`, the bearer token of that request; never printed"},
	{"HOIST_REGISTRY", "`HOST[/REPOSITORY]`: push and promote there instead of `registry` in hoist.yaml"},
	{"HOIST_REGISTRY_USERNAME", "registry user (CI); else Docker's config and credential helpers"},
	{"HOIST_REGISTRY_PASSWORD", "registry password or token; never printed"},
	{"HOIST_GATE_REBUILD", "`1`: DigestGate rebuilds from cache and compares (separate test and push machines)"},
	{"HOIST_VERSION_OVERRIDE", "reserve exactly this `X.Y.Z-staging.N`"},
	{"HOIST_SHARD", "`I/K`: the `shard` target is shard I of K (the `plan` target's matrix gives it, with the shard's `HOIST_IMAGES`)"},
	{"HOIST_FRAGMENTS", "the folder the `join` target reads the shards' fragments from, searched recursively (default `build/hoist/shards`)"},
	{"HOIST_GITHUB_REPO", "`OWNER/REPO`: publish GitHub releases there (`release.github`)"},
	{"HOIST_GITHUB_API", "the GitHub API base (`release.github_api`)"},
	{"HOIST_GITHUB_TOKEN", "token for GitHub releases and the github reserve backend; never printed"},
	{"GITHUB_TOKEN", "used when `HOIST_GITHUB_TOKEN` is not set"},
	{"GITHUB_REF", "the ref the run is for, which decides the line; else read from git"},
	{"GITHUB_EVENT_NAME", "`pull_request` or `pull_request_target` turns on fork / pull-request mode; `schedule`, or `workflow_dispatch` with `HOIST_REBUILD=1`, makes Release the rebuild line (docs/release.md)"},
	{"GITHUB_OUTPUT", "the staging and rebuild lines and Reserve append `version=…` here, and the staging and rebuild lines (and the join) each pushed image's digest reference (`digest_NAME=REPO@sha256:…`); the `plan` target appends `matrix=…`, `sharded=…` and `shards=K`"},
	{"GITHUB_STEP_SUMMARY", "Scan and Release append their Markdown summaries here"},
	{"GITHUB_SERVER_URL", "with `GITHUB_REPOSITORY`, `GITHUB_RUN_ID` and `GITHUB_RUN_ATTEMPT`: the run's URL, the provenance's invocation id"},
	{"GITHUB_REPOSITORY", "`OWNER/REPO` of the run (provenance)"},
	{"GITHUB_RUN_ID", "the run's id (provenance)"},
	{"GITHUB_RUN_ATTEMPT", "the run's attempt (provenance)"},
	{"GITHUB_WORKFLOW_REF", "the workflow file and ref of the run: the provenance's builder id"},
	{"CI", "`true`: a test that needs the engine fails instead of skipping, and a pushing line refuses to run with no registry configured"},
	{"HOIST_PROJECT", "`init`: the images' project (default: DIR's name)"},
}

// ScriptVars are read by scripts/engine-up.sh (and modern-engine-up.sh),
// which run before Go does; Hoist's Go code does not read them.
var ScriptVars = []Var{
	{"HOIST_ENGINE_WAIT", "seconds to wait for a started engine (default 60)"},
	{"HOIST_DOCKERD_LOG", "the started dockerd's log (default /var/log/hoist-dockerd.log)"},
	{"HOIST_DOCKERD_ROOT", "start a private engine on `DOCKER_HOST`'s unix socket with its data, exec root and pid file in this folder, beside any running one"},
}

// Read reads the settings from an environment in os.Environ's form (the
// targets pass os.Environ()). A malformed value is refused with one line
// naming the variable.
func Read(environ []string) (*Settings, error) {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	s := &Settings{
		CI:              truthy(get("CI")),
		Config:          get("HOIST_CONFIG"),
		NoEngineSetup:   truthy(get("HOIST_NO_ENGINE_SETUP")),
		DryRun:          truthy(get("HOIST_DRY_RUN")),
		Version:         get("HOIST_VERSION"),
		Rebuild:         truthy(get("HOIST_REBUILD")),
		Verbose:         truthy(get("HOIST_VERBOSE")),
		BuildkitHost:    get("BUILDKIT_HOST"),
		BuildkitCA:      get("HOIST_BUILDKIT_CA"),
		BuildkitCert:    get("HOIST_BUILDKIT_CERT"),
		BuildkitKey:     get("HOIST_BUILDKIT_KEY"),
		DockerConfig:    get("DOCKER_CONFIG"),
		SSHAuthSock:     get("SSH_AUTH_SOCK"),
		SkipChecks:      truthy(get("HOIST_SKIP_CHECKS")),
		Unpack:          truthy(get("HOIST_UNPACK")),
		GateRebuild:     truthy(get("HOIST_GATE_REBUILD")),
		RegistryUser:    get("HOIST_REGISTRY_USERNAME"),
		GitHubAPI:       get("HOIST_GITHUB_API"),
		VersionOverride: get("HOIST_VERSION_OVERRIDE"),
		Ref:             get("GITHUB_REF"),
		Output:          get("GITHUB_OUTPUT"),
		StepSummary:     get("GITHUB_STEP_SUMMARY"),
		TrivyDB:         get("HOIST_TRIVY_DB"),
		ToolsDir:        get("HOIST_TOOLS_DIR"),
		Rescan:          truthy(get("HOIST_RESCAN")),
		Project:         get("HOIST_PROJECT"),
		SigningKey:      get("HOIST_SIGNING_KEY"),
		VerifyKey:       get("HOIST_VERIFY_KEY"),
		Fragments:       get("HOIST_FRAGMENTS"),
		Environ:         environ,
	}
	spw, _ := lookup("HOIST_SIGNING_PASSWORD")
	s.SigningPassword = Secret(spw)
	s.IDTokenRequestURL = get("ACTIONS_ID_TOKEN_REQUEST_URL")
	s.IDTokenRequestToken = Secret(get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
	for _, r := range strings.Split(get("HOIST_VERIFY_REF"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			s.VerifyRefs = append(s.VerifyRefs, r)
		}
	}
	s.CIBuilderID, s.CIRunURL = ciRun(get)
	// Passwords keep their spaces: they are the user's bytes.
	pw, _ := lookup("HOIST_REGISTRY_PASSWORD")
	s.RegistryPassword = Secret(pw)
	tok, _ := lookup("HOIST_GITHUB_TOKEN")
	if tok == "" {
		tok, _ = lookup("GITHUB_TOKEN")
	}
	s.GitHubToken = Secret(strings.TrimSpace(tok))
	ev := get("GITHUB_EVENT_NAME")
	s.PR = truthy(get("HOIST_PR")) || ev == "pull_request" || ev == "pull_request_target"
	s.Event = ev
	if s.Version != "" {
		if _, err := version.Parse(s.Version); err != nil {
			return nil, fmt.Errorf("HOIST_VERSION: %w", err)
		}
	}
	if p := get("HOIST_PARALLEL"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 1024 {
			return nil, fmt.Errorf("HOIST_PARALLEL=%q: write a whole number from 1 to 1024, or unset it for the default", clip(p))
		}
		s.Parallel = n
	}
	for _, n := range strings.Split(get("HOIST_IMAGES"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			s.Images = append(s.Images, n)
		}
	}
	if sh := get("HOIST_SHARD"); sh != "" {
		i, k, err := shard.ParseSpec(sh)
		if err != nil {
			return nil, fmt.Errorf("HOIST_SHARD: %w", err)
		}
		s.ShardIndex, s.ShardCount = i, k
	}
	if r := get("HOIST_REGISTRY"); r != "" {
		host, repo, err := splitRegistry(r)
		if err != nil {
			return nil, err
		}
		s.RegistryHost, s.RegistryRepository = host, repo
	}
	if g := get("HOIST_GITHUB_REPO"); g != "" {
		if o, r, ok := strings.Cut(g, "/"); !ok || o == "" || r == "" || strings.Contains(r, "/") || strings.ContainsAny(g, " \t@:") {
			return nil, fmt.Errorf("HOIST_GITHUB_REPO=%q: write OWNER/REPO", clip(g))
		}
		s.GitHubRepo = g
	}
	return s, nil
}

// splitRegistry parses HOST[/REPOSITORY]. Credentials written into it are
// refused without being echoed: they belong in HOIST_REGISTRY_USERNAME and
// HOIST_REGISTRY_PASSWORD.
func splitRegistry(r string) (host, repo string, err error) {
	if strings.Contains(r, "@") {
		return "", "", fmt.Errorf("HOIST_REGISTRY holds an @ (credentials?); it was not printed: write HOST[/REPOSITORY] and put the user and password in HOIST_REGISTRY_USERNAME and HOIST_REGISTRY_PASSWORD")
	}
	host, repo, _ = strings.Cut(strings.TrimSuffix(r, "/"), "/")
	if host == "" || strings.Contains(r, "://") || strings.ContainsAny(r, " \t") {
		return "", "", fmt.Errorf("HOIST_REGISTRY=%q: write HOST[/REPOSITORY], e.g. ghcr.io/owner/repo", clip(r))
	}
	return host, repo, nil
}

// ciRun names the GitHub Actions workflow and run from their variables:
// builder id https://github.com/OWNER/REPO/.github/workflows/F.yml@REF,
// run https://github.com/OWNER/REPO/actions/runs/ID/attempts/N.
func ciRun(get func(string) string) (builder, run string) {
	server, repo, id := strings.TrimSuffix(get("GITHUB_SERVER_URL"), "/"), get("GITHUB_REPOSITORY"), get("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return "", ""
	}
	run = server + "/" + repo + "/actions/runs/" + id
	if a := get("GITHUB_RUN_ATTEMPT"); a != "" {
		run += "/attempts/" + a
	}
	builder = server + "/" + repo + "/.github/workflows"
	if w := get("GITHUB_WORKFLOW_REF"); w != "" {
		builder = server + "/" + w
	}
	return builder, run
}

func truthy(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// clip keeps an echoed value short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
