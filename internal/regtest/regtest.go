// Package regtest starts the real distribution registry for tests, with
// htpasswd (bcrypt) credentials when asked, and stops it at cleanup.
package regtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/localregistry"
)

// Distribution starts Debian's docker-registry on a free loopback port;
// with user set it demands that user and password.
func Distribution(t testing.TB, user, pass string) *localregistry.Server {
	t.Helper()
	if _, err := os.Stat(localregistry.Binary); err != nil {
		testenv.Need(t, "needs Debian's docker-registry (apt-get install docker-registry)")
	}
	dir := t.TempDir()
	o := localregistry.Options{Dir: dir}
	if user != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		o.Htpasswd = filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(o.Htpasswd, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := localregistry.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
