package images

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
)

// TestPrivateBase builds FROM an image in a registry that demands a
// password: with Docker's config, with Hoist's registry settings, and
// without either (one clear line).
func TestPrivateBase(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	user, pass := "builder", testenv.Unique("pw-")
	reg := regtest.Distribution(t, user, pass)
	push := func(tag string) string {
		t.Helper()
		ref := fmt.Sprintf("%s/private/base:%s", reg.Host, tag)
		dst, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.Image(func() (io.ReadCloser, error) { return r.e.Save(ctx, r.base) }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
			t.Fatal(err)
		}
		// What a build pulls lands in the engine; leave nothing behind.
		t.Cleanup(func() { r.e.Remove(context.Background(), ref) })
		return ref
	}
	build := func(ref string, b *engine.Builder) (string, error) {
		t.Helper()
		r.b = b
		r.write(map[string]string{"Dockerfile": "FROM " + ref + "\nRUN echo built-on-private > /x\n"})
		out, _, err := r.build("images:\n  - {name: private, dockerfile: Dockerfile}\n", Options{})
		return out + r.log("private"), err
	}

	// Without credentials: one line naming the image and the refusal.
	anon := testenv.Builder(t, r.e)
	if err := anon.UseRegistryAuth(t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	_, err := build(push("1"), anon)
	oneLine(t, err, "first: private: pulling a base image from "+reg.Host+" was refused", "docker login "+reg.Host)

	// Docker's config file, as docker login writes it.
	cfgDir := t.TempDir()
	testenv.WriteFiles(t, cfgDir, map[string]string{"config.json": fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`,
		reg.Host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))})
	withDocker := testenv.Builder(t, r.e)
	if err := withDocker.UseRegistryAuth(cfgDir, nil); err != nil {
		t.Fatal(err)
	}
	log, err := build(push("2"), withDocker)
	if err != nil {
		t.Fatalf("with Docker's config: %v\n%s", err, log)
	}
	if strings.Contains(log, pass) {
		t.Fatal("the build log holds the password")
	}

	// Hoist's registry settings, over an empty Docker config.
	withHoist := testenv.Builder(t, r.e)
	if err := withHoist.UseRegistryAuth(t.TempDir(), map[string]engine.Credentials{reg.Host: {Username: user, Password: pass}}); err != nil {
		t.Fatal(err)
	}
	ref := push("3")
	log, err = build(ref, withHoist)
	if err != nil {
		t.Fatalf("with Hoist's settings: %v\n%s", err, log)
	}
	got, err := r.e.Inspect(ctx, r.project+"/private:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range got.Labels {
		if strings.Contains(k+v, pass) {
			t.Fatalf("label %s holds the password", k)
		}
	}
}
