package trivy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    string
		wantErr string
	}{
		{name: "release", out: "Version: 0.58.0\n", want: "0.58.0"},
		{name: "with DB info", out: "Version: 0.58.0\nVulnerability DB:\n  Version: 2\n  UpdatedAt: 2026-11-20 00:00:00 +0000 UTC\n", want: "0.58.0"},
		{name: "v prefix", out: "Version: v0.58.1\n", want: "0.58.1"},
		{name: "pre-release", out: "Version: 0.59.0-rc.1\n", want: "0.59.0-rc.1"},
		{name: "dev build", out: "Version: dev\n", wantErr: `"dev"`},
		{name: "no version", out: "usage: trivy\n", wantErr: "no version line"},
		{name: "empty", out: "", wantErr: "no version line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVersion([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseVersion = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseVersion = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzParseVersion(f *testing.F) {
	f.Add([]byte("Version: 0.58.0\n"))
	f.Add([]byte("Version: dev\nVulnerability DB:\n  Version: 2\n"))
	f.Add([]byte("\x00Version:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVersion(b)
		if err == nil && !versionRe.MatchString(v) {
			t.Fatalf("accepted %q, which is not a release version", v)
		}
	})
}

// The embedded tools module is the one committed in tools/trivy, so the
// binary Hoist builds for users is the one this repository builds and tests.
func TestPinnedModuleMatchesToolsFolder(t *testing.T) {
	root := filepath.Join("..", "..", "tools", "trivy")
	for name, embedded := range map[string][]byte{"go.mod": pinnedGoMod, "go.sum": pinnedGoSum} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, embedded) {
			t.Errorf("pkg/trivy/pinned.%s differs from tools/trivy/%s: copy it over (cp tools/trivy/%s pkg/trivy/pinned.%s)", name, name, name, name)
		}
	}
	conv, err := os.ReadFile(filepath.Join(root, "worker", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if string(conv) != workerGo {
		t.Error("pkg/trivy/worker_main.go.txt differs from tools/trivy/worker/main.go: copy it over (cp tools/trivy/worker/main.go pkg/trivy/worker_main.go.txt)")
	}
	if !bytes.Contains(pinnedGoMod, []byte("\n\tgithub.com/aquasecurity/trivy v"+Pinned+"\n")) && !bytes.Contains(pinnedGoMod, []byte("require github.com/aquasecurity/trivy v"+Pinned+"\n")) {
		t.Errorf("pinned.go.mod does not require trivy v%s", Pinned)
	}
}

func TestEnsureRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{name: "not a version", o: Options{Version: "latest", Dir: t.TempDir()}, wantErr: `"latest" is not a release version`},
		{name: "no dir", o: Options{Version: Pinned}, wantErr: "no tools folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Ensure(t.Context(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
