package targets

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/logs"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// capture collects everything written to stdout, stderr and
// go-containerregistry's loggers while fn runs.
func capture(t *testing.T, fn func()) (out string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(&buf, r) }()
	oldWarn, oldProg, oldDebug := logs.Warn.Writer(), logs.Progress.Writer(), logs.Debug.Writer()
	logs.Warn.SetOutput(w)
	logs.Progress.SetOutput(w)
	logs.Debug.SetOutput(w) // verbose: request dumps too
	defer func() {
		logs.Warn.SetOutput(oldWarn)
		logs.Progress.SetOutput(oldProg)
		logs.Debug.SetOutput(oldDebug)
		os.Stdout, os.Stderr = oldOut, oldErr
		w.Close()
		wg.Wait()
		out = buf.String()
	}()
	fn()
	return ""
}

func TestRegistryTargetsNeverPrintThePassword(t *testing.T) {
	const user, secret = "ci", "Tr0ub4dor-and-3-hoist"
	reg := regtest.Distribution(t, user, secret)
	e := testenv.Engine(t)
	b, err := e.Builder(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	base := testenv.BusyboxBase(t, e)
	ref := testenv.Unique("hoist-test/target-app:") + "x"
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := imagefix.Build(ctx, e, b, base, imagefix.Spec{Name: "app", Ref: ref, Files: map[string][]byte{"f": []byte("hello")}}, true)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hoist.yaml", "project: hoisttest\nbuild_dir: build\nregistry:\n  host: "+reg.Host+"\n  repository: org\nimages:\n  - name: app\n    dockerfile: Dockerfile\n")
	write("Dockerfile", "FROM scratch\n")
	write("VERSION", "2.3.4\n")
	if err := imagefix.WriteLock(filepath.Join(dir, "build", "lock.json"), "2.3.4", img); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
	t.Setenv("HOIST_VERSION", "2.3.4-staging.1")
	t.Setenv("HOIST_PR", "")
	t.Setenv("GITHUB_EVENT_NAME", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no docker login of this machine
	t.Setenv(envRegistryUser, user)

	var errs []error
	steps := []struct {
		name    string
		pass    string
		env     map[string]string
		run     func(context.Context) error
		wantErr string
	}{
		{name: "push with a wrong password", pass: secret + "-wrong", run: Push, wantErr: "401"},
		{name: "push", pass: secret, run: Push},
		{name: "gate", pass: secret, run: DigestGate},
		{name: "promote dry run", pass: secret, env: map[string]string{"HOIST_DRY_RUN": "1", "HOIST_VERSION": ""}, run: Promote},
		{name: "promote", pass: secret, env: map[string]string{"HOIST_VERSION": ""}, run: Promote},
	}
	var out strings.Builder
	for _, st := range steps {
		t.Setenv(envRegistryPass, st.pass)
		for k, v := range st.env {
			t.Setenv(k, v)
		}
		var err error
		got := capture(t, func() { err = st.run(ctx) })
		if testing.Verbose() {
			t.Logf("%s: %d bytes of output, err %v", st.name, len(got), err)
		}
		out.WriteString(got)
		if err != nil {
			out.WriteString(err.Error())
			errs = append(errs, err)
		}
		switch {
		case st.wantErr == "" && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Fatalf("%s: err = %v, want %q", st.name, err, st.wantErr)
		}
	}
	all := out.String()
	for _, leak := range []string{secret, base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))} {
		if strings.Contains(all, leak) {
			t.Fatalf("the password appears in the output:\n%s", all)
		}
	}
	if !strings.Contains(all, "HOIST_REGISTRY_PASSWORD") || !strings.Contains(all, "promote 2.3.4-staging.1 -> 2.3.4") || !strings.Contains(all, "dry run") {
		t.Errorf("output lacks the guidance or the plan:\n%s", all)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images[0].Pushed) != 3 {
		t.Errorf("lock records %+v, want the digest, 2.3.4-staging.1 and staging", l.Images[0].Pushed)
	}
	if errors.Join(errs...) == nil {
		t.Error("no step failed: the wrong password was accepted")
	}
}
