package fulcio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hoistci/hoist/internal/cosign"
)

// The embedded tools module is the one committed in tools/fulcio.
func TestPinnedModuleMatchesToolsFolder(t *testing.T) {
	root := filepath.Join("..", "..", "tools", "fulcio")
	for name, embedded := range map[string][]byte{"go.mod": pinnedGoMod, "go.sum": pinnedGoSum} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, embedded) {
			t.Errorf("internal/fulcio/pinned.%s differs from tools/fulcio/%s: copy it over", name, name)
		}
	}
	if !bytes.Contains(pinnedGoMod, []byte("require "+Module+" v"+Pinned+"\n")) {
		t.Errorf("pinned.go.mod does not require fulcio v%s", Pinned)
	}
}

// TestBinaryIsThePin gets the pinned Fulcio (building it when this machine
// has none) and checks the version it reports.
func TestBinaryIsThePin(t *testing.T) {
	bin := Binary(t)
	v, err := cosign.Version(t.Context(), bin)
	if err != nil || v != Pinned {
		t.Fatalf("fulcio version = %q, %v; want %s", v, err, Pinned)
	}
}
