package targets

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hoistci/hoist/pkg/initrepo"
	"github.com/hoistci/hoist/pkg/settings"
)

// Init DIR writes a Hoist pipeline for the Dockerfiles in DIR, overwriting nothing.
//
// It writes hoist.yaml (one image per Dockerfile with its folder as the
// context; a Python × runtime matrix where PYTHON_VERSIONS exists and the
// Dockerfile takes ARG PYTHON_VERSION or is a Dockerfile.tmpl; the test of
// each image from its HEALTHCHECK), VERSION and go.mod when missing,
// magefiles/magefile.go importing these targets, the zero-install mage.go,
// and .github/workflows/hoist-ci.yml and hoist-release.yml. Run it from a
// Hoist checkout: go run mage.go init ../myrepo. HOIST_PROJECT names the
// images' project (default: DIR's name).
func Init(_ context.Context, dir string) error {
	set, err := settings.Read(os.Environ())
	if err != nil {
		return err
	}
	res, err := initrepo.Init(dir, initrepo.Options{Project: set.Project, Hoist: hoistVersion()})
	if err != nil {
		return err
	}
	for _, p := range res.Written {
		fmt.Printf("init: wrote %s\n", p)
	}
	fmt.Printf("init: %d images: %v\n", len(res.Images), res.Images)
	fmt.Printf("init: next, in %s: go get github.com/hoistci/hoist@latest && go mod tidy && go run mage.go test\n", dir)
	return nil
}

// hoistVersion is the Hoist module version these targets were built from,
// when they were built as a dependency (empty in Hoist's own checkout).
func hoistVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/hoistci/hoist" && d.Version != "(devel)" {
			return d.Version
		}
	}
	return ""
}
