package localregistry

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hoistci/hoist/internal/testenv"
)

func need(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		testenv.Need(t, Binary+" is not installed (apt-get install docker-registry)")
	}
}

func get(t *testing.T, host string) int {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStartAndHtpasswd(t *testing.T) {
	need(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hp := filepath.Join(dir, "htpasswd")
	os.WriteFile(hp, []byte("ci:"+string(hash)+"\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		htpasswd string
		want     int
	}{
		{name: "open", want: http.StatusOK},
		{name: "htpasswd demands credentials", htpasswd: hp, want: http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(ctx, Options{Dir: filepath.Join(dir, tc.name), Htpasswd: tc.htpasswd})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if got := get(t, s.Host); got != tc.want {
				t.Fatalf("/v2/ answered %d, want %d", got, tc.want)
			}
			if !strings.HasPrefix(s.Host, "127.0.0.1:") {
				t.Errorf("host %s is not loopback", s.Host)
			}
		})
	}
}

func TestParseLog(t *testing.T) {
	log := `127.0.0.1 - - [21/Nov/2026:05:27:44 +0000] "POST /v2/t/x/blobs/uploads/ HTTP/1.1" 202 0 "" "docker"
127.0.0.1 - - [21/Nov/2026:05:27:44 +0000] "PUT /v2/t/x/blobs/uploads/5b?_state=Z&digest=sha256%3A49 HTTP/1.1" 201 0 "" "docker"
127.0.0.1 - - [21/Nov/2026:05:27:44 +0000] "PUT /v2/t/x/blobs/uploads/5c?_state=Z&digest=sha256%3A50 HTTP/1.1" 400 0 "" "docker"
127.0.0.1 - - [21/Nov/2026:05:27:44 +0000] "PUT /v2/t/x/manifests/1 HTTP/1.1" 201 0 "" "docker"
127.0.0.1 - - [21/Nov/2026:05:27:45 +0000] "POST /v2/t/y/blobs/uploads/?mount=sha256:c9&from=t/x HTTP/1.1" 201 0 "" "curl/7.88.1"
time="2026-11-21T05:27:44Z" level=info msg="response completed" http.request.method=PUT
`
	got := ParseLog([]byte(log))
	want := Counts{Uploads: 1, Mounts: 1, ManifestPuts: 1, Requests: 5}
	if got != want {
		t.Fatalf("ParseLog = %+v, want %+v", got, want)
	}
}

func FuzzParseLog(f *testing.F) {
	f.Add([]byte(`1 - - [x] "PUT /v2/a/blobs/uploads/u?digest=sha256:1 HTTP/1.1" 201 0`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := ParseLog(b)
		if c.Uploads+c.Mounts+c.ManifestPuts > c.Requests {
			t.Fatalf("%+v counts more than requests", c)
		}
	})
}
