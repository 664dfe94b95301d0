package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// checkGo checks a base's go: entries (path in the image → Go main package
// folder, relative to hoist.yaml). Hoist compiles each one for Linux when it
// makes the base (pkg/gobin), so a base needs only Go, which every machine
// running Hoist has: no host package, no pull. It returns "" when all is well.
func (b Base) checkGo(c *Config) string {
	for in, pkg := range b.Go {
		if !strings.HasPrefix(in, "/") || strings.HasSuffix(in, "/") {
			return fmt.Sprintf("base %s: go: %q must be a file path in the image, e.g. /bin/NAME", b.Ref, in)
		}
		dir := c.Path(pkg)
		m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if st, err := os.Stat(dir); err != nil || !st.IsDir() || len(m) == 0 {
			return fmt.Sprintf("base %s: go: %s is not a folder of Go files: give the folder of a main package, e.g. ./cmd/NAME", b.Ref, pkg)
		}
	}
	return ""
}
