package buildkitd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestPinnedModuleMatchesToolsFolder(t *testing.T) {
	root := filepath.Join("..", "..", "tools", "buildkitd")
	for name, embedded := range map[string][]byte{"go.mod": pinnedGoMod, "go.sum": pinnedGoSum} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, embedded) {
			t.Errorf("internal/buildkitd/pinned.%s differs from tools/buildkitd/%s: copy it over", name, name)
		}
	}
	if !bytes.Contains(pinnedGoMod, []byte("require "+Module+" v"+Pinned+"\n")) {
		t.Errorf("pinned.go.mod does not require buildkit v%s", Pinned)
	}
}
