package kubenode

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
)

// The embedded tools module is the one committed in tools/kubernetes, so
// the build can be reproduced by hand there, and it pins Version.
func TestPinnedModuleMatchesToolsFolder(t *testing.T) {
	tools := filepath.Join(testenv.RepoRoot(t), "tools", "kubernetes")
	for name, embedded := range map[string][]byte{"go.mod": pinnedGoMod, "go.sum": pinnedGoSum, "tools.go": []byte(toolsGo)} {
		b, err := os.ReadFile(filepath.Join(tools, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, embedded) {
			t.Errorf("tools/kubernetes/%s differs from what internal/kubenode embeds: copy it over (go.mod and go.sum to pinned.go.mod and pinned.go.sum, tools.go into toolsGo)", name)
		}
	}
	if !bytes.Contains(pinnedGoMod, []byte("require k8s.io/kubernetes v"+Version+"\n")) {
		t.Errorf("pinned.go.mod does not require k8s.io/kubernetes v%s", Version)
	}
	// Every staging module kubernetes requires at v0.0.0 is replaced by its
	// release of the same minor version.
	minor := "v0." + strings.TrimPrefix(Version, "1.")
	for _, line := range strings.Split(string(pinnedGoMod), "\n") {
		if strings.Contains(line, "=>") && !strings.HasSuffix(line, " "+minor) {
			t.Errorf("pinned.go.mod: %q does not replace with %s", strings.TrimSpace(line), minor)
		}
	}
}

// TestEnsureComponentsBuildsOnceAndReuses gets the components (building
// them when this machine has none), then again: the second call reuses
// them silently, and kubectl reports the pinned version.
func TestEnsureComponentsBuildsOnceAndReuses(t *testing.T) {
	testenv.Binary(t, "go", "golang-go")
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	o := EnsureOptions{Tools: DefaultTools()}
	first, err := EnsureComponents(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Dir != ComponentsDir(o.Tools) {
		t.Fatalf("EnsureComponents = %+v", first)
	}
	var progress bytes.Buffer
	o.Progress = &progress
	second, err := EnsureComponents(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if second.Built || second.Dir != first.Dir || progress.Len() != 0 {
		t.Fatalf("second call = %+v, progress %q: want the same folder reused silently", second, progress.String())
	}
	if v, err := ClientVersion(ctx, second.Path("kubectl")); err != nil || v != "v"+Version {
		t.Fatalf("kubectl version = %q, %v", v, err)
	}
}

// An incomplete folder (a build killed half-way, a file removed) is not
// taken for the components, and a missing tools folder is an error.
func TestEnsureComponentsBadInput(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(ComponentsDir(dir), 0o755)
	os.WriteFile(filepath.Join(ComponentsDir(dir), "kubectl"), []byte("#!/bin/sh\necho '{\"clientVersion\":{\"gitVersion\":\"v"+Version+"\"}}'\n"), 0o755)
	if err := complete(context.Background(), ComponentsDir(dir)); err == nil || !strings.Contains(err.Error(), "kube-apiserver is missing") {
		t.Errorf("complete(half a folder) = %v, want kube-apiserver named missing", err)
	}
	if _, err := EnsureComponents(context.Background(), EnsureOptions{}); err == nil {
		t.Error("EnsureComponents with no tools folder succeeded")
	}
}
