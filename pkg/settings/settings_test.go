package settings

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsTableMatchesVars: docs/targets.md lists exactly the variables
// Read looks at, with the same text.
func TestDocsTableMatchesVars(t *testing.T) {
	b, err := os.ReadFile("../../docs/targets.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "## Environment variables")
	if !ok {
		t.Fatal("docs/targets.md has no \"## Environment variables\" section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| (.*) \\|$")
	var got []string
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		got = append(got, m[1]+" | "+m[2])
	}
	var want []string
	for _, v := range Vars {
		want = append(want, v.Name+" | "+v.Doc)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("docs/targets.md's table:\n%s\n\nsettings.Vars:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every variable named in the code's docs is read: no HOIST_ name in
	// the docs folder is unknown to Vars.
	known := map[string]bool{}
	for _, v := range Vars {
		known[v.Name] = true
	}
	script, err := os.ReadFile("../../scripts/engine-up.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ScriptVars {
		if !strings.Contains(string(script), v.Name) {
			t.Errorf("scripts/engine-up.sh does not read %s", v.Name)
		}
		if !strings.Contains(string(b), "| `"+v.Name+"` | "+v.Doc+" |") {
			t.Errorf("docs/targets.md does not document %s as settings.ScriptVars does", v.Name)
		}
		known[v.Name] = true
	}
	entries, _ := os.ReadDir("../../docs")
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		b, _ := os.ReadFile("../../docs/" + e.Name())
		for _, n := range regexp.MustCompile(`HOIST_[A-Z_]+[A-Z]`).FindAllString(string(b), -1) {
			if !known[n] {
				t.Errorf("docs/%s names %s, which Hoist does not read", e.Name(), n)
			}
		}
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		check   func(*Settings) bool
		wantErr string
	}{
		{name: "defaults", env: nil, check: func(s *Settings) bool { return !s.CI && s.Parallel == 0 && s.Images == nil }},
		{name: "ci and lists", env: []string{"CI=true", "HOIST_IMAGES= a, b ,", "HOIST_PARALLEL=3"}, check: func(s *Settings) bool {
			return s.CI && s.Parallel == 3 && strings.Join(s.Images, ",") == "a,b"
		}},
		{name: "pull request event", env: []string{"GITHUB_EVENT_NAME=pull_request_target"}, check: func(s *Settings) bool { return s.PR }},
		{name: "registry split", env: []string{"HOIST_REGISTRY=ghcr.io/acme/tools/"}, check: func(s *Settings) bool {
			return s.RegistryHost == "ghcr.io" && s.RegistryRepository == "acme/tools"
		}},
		{name: "token fallback", env: []string{"GITHUB_TOKEN=t1"}, check: func(s *Settings) bool { return s.GitHubToken == "t1" }},
		{name: "own token first", env: []string{"GITHUB_TOKEN=t1", "HOIST_GITHUB_TOKEN=t2"}, check: func(s *Settings) bool { return s.GitHubToken == "t2" }},
		{name: "negative parallel", env: []string{"HOIST_PARALLEL=-3"}, wantErr: "HOIST_PARALLEL=\"-3\": write a whole number"},
		{name: "word parallel", env: []string{"HOIST_PARALLEL=lots"}, wantErr: `HOIST_PARALLEL="lots"`},
		{name: "credentials in registry", env: []string{"HOIST_REGISTRY=bob:hunter2@ghcr.io/x"}, wantErr: "HOIST_REGISTRY holds an @"},
		{name: "scheme in registry", env: []string{"HOIST_REGISTRY=https://ghcr.io/x"}, wantErr: "write HOST[/REPOSITORY]"},
		{name: "bad github repo", env: []string{"HOIST_GITHUB_REPO=acme"}, wantErr: "write OWNER/REPO"},
		{name: "long value clipped", env: []string{"HOIST_PARALLEL=" + strings.Repeat("9x", 5000)}, wantErr: "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Read(tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") || len(err.Error()) > 300 {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(s) {
				t.Fatalf("Read(%v) = %+v, %v", tt.env, s, err)
			}
		})
	}
}

// FuzzRead: any environment gives settings or one short line, never a panic
// and never a password in the error.
func FuzzRead(f *testing.F) {
	for _, s := range []string{"HOIST_PARALLEL=4", "HOIST_REGISTRY=a:b@c", "HOIST_IMAGES=,,", "CI=1", "HOIST_GITHUB_REPO=a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, kv string) {
		_, err := Read([]string{kv, "HOIST_REGISTRY_PASSWORD=s3cr3t-value"})
		if err != nil && (strings.Contains(err.Error(), "s3cr3t-value") || strings.Contains(err.Error(), "\n")) {
			t.Fatalf("%q: %v", kv, err)
		}
	})
}

// TestSigningAndRunSettings: the signing password keeps its bytes and never
// prints; the CI run's builder id and URL come from GitHub's variables,
// and nothing from them outside Actions.
func TestSigningAndRunSettings(t *testing.T) {
	s, err := Read([]string{
		"HOIST_SIGNING_KEY=/k/cosign.key", "HOIST_SIGNING_PASSWORD= pw with spaces ",
		"HOIST_VERIFY_REF=r/a@sha256:1, r/b:2 ,",
		"GITHUB_SERVER_URL=https://github.com/", "GITHUB_REPOSITORY=o/r", "GITHUB_RUN_ID=7", "GITHUB_RUN_ATTEMPT=3",
		"GITHUB_WORKFLOW_REF=o/r/.github/workflows/ci.yml@refs/heads/main",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.SigningKey != "/k/cosign.key" || string(s.SigningPassword) != " pw with spaces " || strings.Join(s.VerifyRefs, "|") != "r/a@sha256:1|r/b:2" {
		t.Fatalf("settings: key %q, refs %q", s.SigningKey, s.VerifyRefs)
	}
	if got := fmt.Sprintf("%v %+v %#v", s.SigningPassword, s.SigningPassword, s.SigningPassword); strings.Contains(got, "pw with spaces") {
		t.Fatalf("the signing password prints: %s", got)
	}
	if s.CIBuilderID != "https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main" || s.CIRunURL != "https://github.com/o/r/actions/runs/7/attempts/3" {
		t.Fatalf("builder %q, run %q", s.CIBuilderID, s.CIRunURL)
	}
	s, err = Read([]string{"GITHUB_REPOSITORY=o/r"})
	if err != nil || s.CIBuilderID != "" || s.CIRunURL != "" {
		t.Fatalf("outside Actions: builder %q, run %q, %v", s.CIBuilderID, s.CIRunURL, err)
	}
}

// TestSettingsNeverPrintSecrets: printing the settings in any form shows
// no value of the environment.
func TestSettingsNeverPrintSecrets(t *testing.T) {
	const secret = "s3cr3t-token-value"
	s, err := Read([]string{"HOIST_REGISTRY_PASSWORD=" + secret, "GITHUB_TOKEN=" + secret, "HOIST_SIGNING_PASSWORD=" + secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, s); strings.Contains(out, secret) {
			t.Errorf("%s prints a secret: %s", f, out)
		}
		if out := fmt.Sprintf(f, *s); strings.Contains(out, secret) {
			t.Errorf("%s of the value prints a secret: %s", f, out)
		}
	}
}
