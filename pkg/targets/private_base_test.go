package targets

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
)

// TestImagesPrivateBaseWithHoistSettings builds FROM a private image with
// the credentials the Images target reads from HOIST_REGISTRY_USERNAME
// and HOIST_REGISTRY_PASSWORD, and refuses in one line without them.
func TestImagesPrivateBaseWithHoistSettings(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	base := testenv.BusyboxBase(t, e)
	user, pass := "ci", testenv.Unique("pw-")
	reg := regtest.Distribution(t, user, pass)
	ref := reg.Host + "/private/base:1"
	dst, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.Image(func() (io.ReadCloser, error) { return e.Save(ctx, base) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	project := testenv.Unique("hoistpriv")
	testenv.WriteFiles(t, dir, map[string]string{
		"VERSION":        "1.0.0\n",
		"ctx/Dockerfile": "FROM " + ref + "\nRUN echo on-private > /x\n",
		"hoist.yaml":     fmt.Sprintf("project: %s\nimages:\n  - {name: app, context: ctx, dockerfile: ctx/Dockerfile}\n", project),
	})
	t.Setenv(envConfig, filepath.Join(dir, "hoist.yaml"))
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no docker login of this machine
	t.Setenv(envRegistry, reg.Host+"/team")
	t.Cleanup(func() {
		e.Remove(context.Background(), project+"/app:1.0.0")
		e.Remove(context.Background(), ref)
	})
	_, err = captureOut(t, func() error { return Images(ctx) })
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized): run docker login "+reg.Host) {
		t.Fatalf("without credentials: err = %v", err)
	}
	t.Setenv(envRegistryUser, user)
	t.Setenv(envRegistryPass, pass)
	out, err := captureOut(t, func() error { return Images(ctx) })
	if err != nil {
		t.Fatalf("with HOIST_REGISTRY_USERNAME/PASSWORD: %v", err)
	}
	if strings.Contains(out, pass) {
		t.Fatal("the output holds the password")
	}
}
