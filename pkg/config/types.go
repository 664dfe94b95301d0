package config

import "time"

// DefaultFile is the config file Hoist looks for in the repository root.
const DefaultFile = "hoist.yaml"

// Config is a repository's pipeline.
type Config struct {
	// Project names the repository; local image references are PROJECT/NAME:VERSION.
	Project string `yaml:"project"`
	// Source is the repository URL for the org.opencontainers.image.source label.
	Source string `yaml:"source"`
	// VersionFile holds the version (default VERSION).
	VersionFile string `yaml:"version_file"`
	// BuildDir holds generated Dockerfiles, logs, reports and the lock file
	// (default build/hoist). It is not committed.
	BuildDir string `yaml:"build_dir"`
	// Parallel bounds concurrent builds, tests and scans (default: core count).
	Parallel int `yaml:"parallel"`
	// Checks are the static checks Test runs first, failing fast.
	Checks []Check `yaml:"checks"`
	// Bases are base images made locally from host files, with no pull.
	Bases []Base `yaml:"bases"`
	// Network is what RUN steps get (default, none or host) unless an image
	// says otherwise; default is the engine's default network, as docker
	// build gives.
	Network string `yaml:"network"`
	// Secrets are build secrets by id, for RUN --mount=type=secret,id=ID.
	Secrets map[string]Secret `yaml:"secrets"`
	// SSH are SSH agents by id, for RUN --mount=type=ssh,id=ID.
	SSH map[string]SSH `yaml:"ssh"`
	// Builder is a standalone buildkitd to build with instead of the
	// engine's own BuildKit (empty: the engine's).
	Builder Builder `yaml:"builder"`
	// Platforms are what every image is built for, e.g. [linux/amd64,
	// linux/arm64], unless an image says otherwise (default: the engine's
	// own platform only). See PlatformsOf.
	Platforms []string `yaml:"platforms"`
	// Images to build; one entry may expand to many through its matrix.
	Images   []Image  `yaml:"images"`
	Registry Registry `yaml:"registry"`
	Cluster  Cluster  `yaml:"cluster"`
	Scan     Scan     `yaml:"scan"`
	Release  Release  `yaml:"release"`
	// Pins say where the publishing lines pin what they published, for
	// GitOps (build/hoist/pins.json always).
	Pins   Pins   `yaml:"pins"`
	Attest Attest `yaml:"attest"`
	// Shards split the staging and vX.Y.Z lines over CI jobs when there
	// are many images (the plan target).
	Shards Shards `yaml:"shards"`
	// Outside lists folders outside the repository that paths in this file
	// may name (e.g. ../shared-base); any other path that leaves the
	// repository, after symlinks, is refused.
	Outside []string `yaml:"outside"`

	// Dir is the folder holding the config file; relative paths resolve from it.
	Dir string `yaml:"-"`
	// File is the config file's path as given.
	File string `yaml:"-"`
	// keyLine is where each top-level key is, for messages about it.
	keyLine map[string]int
	// platformLines is where each of Platforms is written.
	platformLines []int
}

// Check is one static check: a command run in the repository root.
type Check struct {
	Name string   `yaml:"name"`
	Run  []string `yaml:"run"`
	Line int      `yaml:"-"`
}

// Base is a base image assembled from host files and imported into the
// engine, for machines that cannot pull.
type Base struct {
	Ref string `yaml:"ref"`
	// Busybox is a host busybox binary (Debian's busybox-static: /bin/busybox);
	// it is placed at /bin/busybox with the usual applets linked to it.
	Busybox string `yaml:"busybox"`
	// Files maps a path in the image to a host path (e.g. /bin/busybox: /bin/busybox).
	Files map[string]string `yaml:"files"`
	// Links maps a path in the image to a symlink target (e.g. /bin/sh: busybox).
	Links map[string]string `yaml:"links"`
	// Dirs are empty folders to create (e.g. /tmp).
	Dirs []string `yaml:"dirs"`
	// Env is the image's environment, KEY=VALUE.
	Env []string `yaml:"env"`
	// Go maps a path in the image to a Go main package that Hoist compiles
	// for the engine's Linux (gobase.go).
	Go   map[string]string `yaml:"go"`
	Line int               `yaml:"-"`
}

// Image is one image, or a family of images when it has a matrix.
type Image struct {
	// Name is a template over the matrix entry, e.g. demo-{{.runtime}}-py{{.python}}.
	Name string `yaml:"name"`
	// Context is the build context folder (default the repository root).
	Context string `yaml:"context"`
	// Dockerfile is a plain Dockerfile; Template is a Go text/template rendered
	// once per matrix entry. Exactly one is set.
	Dockerfile string `yaml:"dockerfile"`
	Template   string `yaml:"template"`
	// Target is the multi-stage target to build.
	Target string `yaml:"target"`
	// Matrix expands this image into entries.
	Matrix *Matrix `yaml:"matrix"`
	// Args are build arguments; values are templates over the entry.
	Args map[string]string `yaml:"args"`
	// Labels are added to the image; values are templates over the entry.
	Labels map[string]string `yaml:"labels"`
	// Vars are extra template values (e.g. base: hoist/busybox:1).
	Vars map[string]string `yaml:"vars"`
	// Network overrides the top-level network for this image's RUN steps.
	Network string `yaml:"network"`
	// Contexts are named build contexts, as docker buildx build
	// --build-context takes them: name -> folder or docker-image://REF.
	Contexts map[string]string `yaml:"contexts"`
	// Test is the command run inside the image by the Test target.
	Test *ImageTest `yaml:"test"`
	// Platforms override the top level's for this image and its matrix
	// entries.
	Platforms []string `yaml:"platforms"`
	Line      int      `yaml:"-"`
	// platformLines is where each of Platforms is written.
	platformLines []int
}

// Build networks for RUN steps.
const (
	NetworkDefault = "default" // the engine's default network, as docker build gives
	NetworkNone    = "none"
	NetworkHost    = "host"
)

// ImageContextPrefix marks a named context that is an image, not a folder.
const ImageContextPrefix = "docker-image://"

// Secret is where one build secret comes from: an environment variable or
// a file. Its value reaches BuildKit only, never a build argument, a layer,
// a log, the lock or the inputs hash.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
	// PR passes the secret in fork/pull-request mode too; only for values
	// that are safe to show to anyone who can open a pull request.
	PR   bool `yaml:"pr"`
	Line int  `yaml:"-"`
}

// SSH is one SSH agent forwarded to RUN --mount=type=ssh steps: a running
// agent's socket (default: SSH_AUTH_SOCK's) or private key files.
type SSH struct {
	Socket string   `yaml:"socket"`
	Keys   []string `yaml:"keys"`
	Line   int      `yaml:"-"`
}

// ImageTest is the per-image container test.
type ImageTest struct {
	Command []string `yaml:"command"`
	// Network is none (default) or host.
	Network string        `yaml:"network"`
	Timeout time.Duration `yaml:"timeout"`
	Env     []string      `yaml:"env"`
}

// Matrix is a set of axes whose product gives the entries.
type Matrix struct {
	Axes    []Axis              `yaml:"-"`
	Include []map[string]string `yaml:"include"`
	Exclude []map[string]string `yaml:"exclude"`
	Line    int                 `yaml:"-"`
}

// Axis is one matrix dimension: literal values, or a file of one value a line.
type Axis struct {
	Name   string
	Values []string
	File   string // set when the values came from a file
	Line   int
}

// Registry is where Push and Promote write.
type Registry struct {
	// Host is the registry, e.g. ghcr.io. Empty: a local registry on
	// 127.0.0.1 started on demand.
	Host string `yaml:"host"`
	// Repository is the path prefix, e.g. OWNER/REPO; images go to
	// HOST/REPOSITORY/NAME.
	Repository string `yaml:"repository"`
	// Insecure allows plain HTTP (loopback registries).
	Insecure bool `yaml:"insecure"`
	// Promote names another registry/repository to promote into; empty means
	// the same repository.
	PromoteTo string `yaml:"promote_to"`
	// LocalPort pins the port of the on-demand local registry; 0 (the
	// default) lets each checkout pick a free one and record it.
	LocalPort int `yaml:"local_port"`
	// Cache keeps a build cache per image in the registry, at
	// HOST/REPOSITORY/NAME:buildcache: builds read it, and non-PR builds
	// write it (every layer, mode=max; inline in the image on an engine
	// that can export no other kind).
	Cache bool `yaml:"cache"`
	Line  int  `yaml:"-"`
}

// Builder is a standalone buildkitd reached over TCP with mutual TLS (or a
// unix socket), as buildx's remote driver reaches one. Images built there
// are loaded into the local engine for the tests.
type Builder struct {
	// Host is the daemon's address: tcp://HOST:PORT or unix:///PATH.
	// BUILDKIT_HOST overrides it.
	Host string `yaml:"host"`
	// CA, Cert and Key are PEM files for mutual TLS: the CA that signed the
	// daemon's certificate, and this client's certificate and key. Like
	// secret files they usually live outside the repository.
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name the daemon's certificate must carry
	// (default: the host of Host).
	ServerName string `yaml:"server_name"`
	Line       int    `yaml:"-"`
}

// Pins is the GitOps side of a release: a kustomization to pin, and a
// branch of a git remote to commit the pins to.
type Pins struct {
	// Kustomization is a kustomization.yaml in the repository whose
	// images: entries are pinned (in a copy beside pins.json).
	Kustomization string `yaml:"kustomization"`
	// CommitTo commits pins.json (and the pinned kustomization) to a
	// branch; never in fork/PR mode.
	CommitTo PinsCommit `yaml:"commit_to"`
	Line     int        `yaml:"-"`
}

// Shards say when and how far the plan target splits a release over CI
// shards.
type Shards struct {
	// Threshold: shard only when there are more images than this
	// (default DefaultShardThreshold).
	Threshold int `yaml:"threshold"`
	// Count is how many shards (default DefaultShardCount); never more
	// than there are images.
	Count int `yaml:"count"`
	Line  int `yaml:"-"`
}

// Defaults of Shards.
const (
	DefaultShardThreshold = 40
	DefaultShardCount     = 4
)

// PinsCommit is a branch of a git remote and a folder in it.
type PinsCommit struct {
	Remote string `yaml:"remote"` // a URL or a remote of the checkout
	Branch string `yaml:"branch"`
	Path   string `yaml:"path"` // default: the project's name
}

// Cluster is the k3d cluster Test loads images into.
type Cluster struct {
	// Name of the k3d cluster; empty disables the in-cluster stage.
	Name string `yaml:"name"`
	// Config is the k3d config file (default infra/k3d/cluster.yaml).
	Config string `yaml:"config"`
	// Manifests is the folder of Kubernetes manifests applied for tests.
	Manifests string `yaml:"manifests"`
	// Test is the command run once the manifests are ready.
	Test    []string      `yaml:"test"`
	Timeout time.Duration `yaml:"timeout"`
	Line    int           `yaml:"-"`
}

// Scan is the vulnerability policy.
type Scan struct {
	// Severity lists the severities that fail the gate (default HIGH, CRITICAL).
	Severity []string `yaml:"severity"`
	// IgnoreUnfixed skips findings with no fixed version.
	IgnoreUnfixed bool `yaml:"ignore_unfixed"`
	// Ignore lists accepted findings, each with a reason and an expiry.
	Ignore []Ignore `yaml:"ignore"`
	// Scanners are Trivy's scanners (default vuln, secret).
	Scanners []string `yaml:"scanners"`
	// Trivy is the pinned Trivy version.
	Trivy string `yaml:"trivy"`
	// DBDir is an offline vulnerability DB folder; set, Trivy never downloads.
	DBDir string `yaml:"db_dir"`
	// DBRepository is where Trivy downloads its DB from when DBDir is not
	// set, e.g. a mirror (default: Trivy's own, ghcr.io/aquasecurity/trivy-db).
	DBRepository string        `yaml:"db_repository"`
	Timeout      time.Duration `yaml:"timeout"`
	Line         int           `yaml:"-"`
}

// Ignore accepts one finding until it expires.
type Ignore struct {
	ID      string `yaml:"id"`
	Package string `yaml:"package"`
	Reason  string `yaml:"reason"`
	Expires string `yaml:"expires"` // YYYY-MM-DD
	Line    int    `yaml:"-"`
}

// Release is the release flow's settings.
type Release struct {
	// Remote is the git remote tags are reserved on (default origin).
	Remote string `yaml:"remote"`
	// Changelogs is the folder of X.Y.Z.md notes (default docs/CHANGELOGS).
	Changelogs string `yaml:"changelogs"`
	// GitHub is OWNER/REPO for GitHub releases; empty disables them.
	GitHub string `yaml:"github"`
	// GitHubAPI is the API base URL (default https://api.github.com).
	GitHubAPI string `yaml:"github_api"`
	// Reserve is where staging versions are reserved by creating their tag:
	// git (default: a push to Remote) or github (the Git refs API of GitHub).
	Reserve string `yaml:"reserve"`
	// StagingBranch and MainBranch choose the line (defaults staging, main).
	StagingBranch string `yaml:"staging_branch"`
	MainBranch    string `yaml:"main_branch"`
	Line          int    `yaml:"-"`
}
