package pipeline

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/settings"
)

func TestBuildSecretsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "npmrc": "x"})
	cfg, err := config.Parse("hoist.yaml", dir, []byte(`project: d
secrets:
  token: {env: HOIST_TEST_TOKEN}
  npmrc: {file: npmrc}
  dsn: {env: HOIST_TEST_DSN, pr: true}
  unset: {env: HOIST_TEST_UNSET}
ssh:
  default:
  deploy: {socket: /run/deploy.sock}
images:
  - {name: a, dockerfile: Dockerfile}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"HOIST_TEST_TOKEN=tok-value", "HOIST_TEST_DSN=dsn-value", "SSH_AUTH_SOCK=/run/agent.sock"}
	set, err := settings.Read(env)
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{Cfg: cfg, Set: set}
	secrets, agents := r.buildSecrets()
	if got := secrets["token"]; string(got.Value) != "tok-value" || got.Withheld != "" || got.Where != "hoist.yaml:3" {
		t.Errorf("token = %+v", got)
	}
	if got := secrets["npmrc"]; got.File != filepath.Join(dir, "npmrc") || got.Value != nil {
		t.Errorf("npmrc = %+v", got)
	}
	if got := secrets["unset"]; !strings.Contains(got.Withheld, "HOIST_TEST_UNSET is not set") {
		t.Errorf("unset = %+v", got)
	}
	if agents["default"].Socket != "/run/agent.sock" || agents["default"].From != "SSH_AUTH_SOCK" || agents["deploy"].Socket != "/run/deploy.sock" {
		t.Errorf("agents = %+v", agents)
	}
	// Fork/PR mode: only what is marked pr: true is passed.
	if set, err = settings.Read(append(env, "HOIST_PR=1")); err != nil {
		t.Fatal(err)
	}
	r.Set = set
	secrets, _ = r.buildSecrets()
	if got := secrets["token"]; got.Value != nil || !strings.Contains(got.Withheld, "fork/PR mode") {
		t.Errorf("PR mode token = %+v", got)
	}
	if got := secrets["npmrc"]; got.File != "" || got.Withheld == "" {
		t.Errorf("PR mode npmrc = %+v", got)
	}
	if got := secrets["dsn"]; string(got.Value) != "dsn-value" || got.Withheld != "" {
		t.Errorf("PR mode dsn = %+v", got)
	}
}
