package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/lock"
)

// loaded is a manifest Hoist wrote: the config and layers it names.
type loaded struct {
	Config string   `json:"config"`
	Layers []string `json:"layers"`
}

// readState reads the remembered manifests; a missing or unreadable file is
// no memory (the load then asks the nodes for more).
func readState(path string) map[string]loaded {
	m := map[string]loaded{}
	if path == "" {
		return m
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]loaded{}
	}
	return m
}

func writeState(path string, m map[string]loaded) error {
	if path == "" {
		return nil
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("remembering loaded manifests: %w", err)
	}
	return lock.WriteFileAtomic(path, append(b, '\n'))
}
