package localregistry

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

func TestEnsureReusesAndStop(t *testing.T) {
	need(t)
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Ensure(ctx, Options{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop(dir) })
	pid, _ := os.ReadFile(filepath.Join(dir, "registry.pid"))
	if get(t, s.Host) != http.StatusOK {
		t.Fatal("not answering")
	}
	// A second call finds it running and starts nothing.
	s2, err := Ensure(ctx, Options{Dir: dir, Port: port})
	if err != nil || s2.Host != s.Host {
		t.Fatalf("second Ensure: %v %v", s2, err)
	}
	pid2, _ := os.ReadFile(filepath.Join(dir, "registry.pid"))
	if string(pid) != string(pid2) {
		t.Errorf("second Ensure started another registry (pid %s then %s)", pid, pid2)
	}
	if err := Stop(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for answers(ctx, s.Host) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if answers(ctx, s.Host) {
		t.Fatalf("registry (pid %s) still answers after Stop", strings.TrimSpace(string(pid)))
	}
	if _, err := strconv.Atoi(strings.TrimSpace(string(pid))); err != nil {
		t.Errorf("pid file %q", pid)
	}
}

func TestEnsureReportsFailure(t *testing.T) {
	need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Another process holds the port: the registry exits and Ensure says so.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	_, err = Ensure(ctx, Options{Dir: dir, Port: p})
	if err == nil || !strings.Contains(err.Error(), "registry.log") {
		t.Fatalf("err = %v, want one pointing at the log", err)
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
