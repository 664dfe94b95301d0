package scan_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

// The advisories of the test DB, for packages the test images really hold.
var advisories = []scantest.Advisory{
	{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	{Source: "debian 12", Package: "libc6", ID: "CVE-2099-1002", Fixed: "2.36-9+deb12u9", Severity: "MEDIUM"},
	{Source: "debian 12", Package: "zlib1g", ID: "CVE-2099-1003", Fixed: "1:1.2.13.dfsg-1+deb12u1", Severity: "CRITICAL"},
	{Source: "debian 12", Package: "curl", ID: "CVE-2099-1004", Fixed: "7.88.1-10+deb12u9", Severity: "HIGH"},
	{Source: "pip::GitHub Security Advisory pip", SourceID: "ghsa", Package: "requests", ID: "CVE-2099-2001", Vulnerable: []string{"<2.31.0"}, Patched: []string{"2.31.0"}, Severity: "HIGH"},
}

// A Python package as pip installs it, for the language-package scan.
const requestsMetadata = "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\nSummary: HTTP for Humans.\nLicense: Apache 2.0\n"

// A key in the format of an AWS access key ID, made up for this test.
const fakeKey = "AKIAHOISTTESTKEY0042"

// tools is the pinned Trivy through the same code path users get: from PATH
// when it matches, else built once into the user cache and reused.
var (
	toolOnce sync.Once
	tool     trivy.Tool
	toolErr  error
)

func trivyOptions(t *testing.T) trivy.Options {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return trivy.Options{Version: trivy.Pinned, Dir: filepath.Join(cache, "hoist", "tools")}
}

func pinnedTrivy(t *testing.T) trivy.Options {
	t.Helper()
	o := trivyOptions(t)
	toolOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		var progress bytes.Buffer
		o.Progress = &progress
		tool, toolErr = trivy.Ensure(ctx, o)
		if tool.Built {
			t.Logf("built %s:\n%s", tool, progress.String())
		}
	})
	if toolErr != nil {
		t.Fatalf("getting trivy %s: %v", trivy.Pinned, toolErr)
	}
	return o
}

type fixture struct {
	e        *engine.Engine
	dbDir    string
	lockPath string
	out      string
	images   map[string]lock.Image // by name
}

// newFixture imports the test images and writes the lock file and the DB.
func newFixture(t *testing.T, images map[string]map[string]string, files map[string]map[string]string) *fixture {
	t.Helper()
	e := testenv.Engine(t)
	ctx := t.Context()
	dir := t.TempDir()
	dbDir, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), filepath.Join(dir, "trivy-db"), advisories)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{e: e, dbDir: dbDir, lockPath: filepath.Join(dir, "build", "lock.json"), out: filepath.Join(dir, "build", "scan"), images: map[string]lock.Image{}}
	l := &lock.Lock{Project: "scantest", Version: "1.0.0", Created: time.Now()}
	for name, pkgs := range images {
		ref := testenv.Unique("hoist-scantest/" + name + ":")
		if _, err := scantest.DebianImage(ctx, e, ref, pkgs, files[name]); err != nil {
			t.Fatalf("making image %s: %v", name, err)
		}
		t.Cleanup(func() { e.Remove(context.Background(), ref) })
		img, err := imagefix.Record(ctx, e, name, ref)
		if err != nil {
			t.Fatal(err)
		}
		l.Put(img)
		f.images[name] = img
	}
	if err := os.MkdirAll(filepath.Dir(f.lockPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := lock.Write(f.lockPath, l); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) options(t *testing.T, p scan.Policy) scan.Options {
	return scan.Options{
		LockPath: f.lockPath, Policy: p, Engine: f.e,
		Trivy: pinnedTrivy(t), CacheDir: filepath.Join(filepath.Dir(f.out), "trivy-cache"), DBDir: f.dbDir,
		OutDir: f.out, Parallel: 2, Timeout: 2 * time.Minute,
		Now: func() time.Time { return time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC) },
	}
}

func basePolicy() scan.Policy {
	return scan.Policy{Severity: []string{"HIGH", "CRITICAL"}, Scanners: []string{"vuln", "secret"}}
}

// TestScanGate scans real images with the real Trivy and a DB made for them:
// one with a HIGH finding (and a secret) that fails the gate, one clean that
// passes, one whose finding is ignored with a reason, one whose ignore entry
// expired, and one with a vulnerable Python package (a language package). It checks the verdicts, the error text, the lock file, every
// report, the step summary, and that the secret never leaks.
func TestScanGate(t *testing.T) { testenv.EachEngine(t, testScanGate) }

func testScanGate(t *testing.T) {
	f := newFixture(t, map[string]map[string]string{
		"vulnerable": {"openssl": "3.0.11-1~deb12u1", "libc6": "2.36-9+deb12u4"},
		"clean":      {"openssl": "3.0.15-1~deb12u1", "libc6": "2.36-9+deb12u4"},
		"ignored":    {"zlib1g": "1:1.2.13.dfsg-1"},
		"expired":    {"curl": "7.88.1-10+deb12u5"},
		"python":     {"libc6": "2.36-9+deb12u9"},
	}, map[string]map[string]string{
		"vulnerable": {"/app/settings.env": "REGION=eu-west-1\nAWS_ACCESS_KEY_ID=" + fakeKey + "\n"},
		"python":     {"/usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA": requestsMetadata},
	})
	p := basePolicy()
	p.Ignore = []scan.Ignore{
		{ID: "CVE-2099-1003", Package: "zlib1g", Reason: "zlib is only used to read trusted bundled assets", Expires: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), Where: "hoist.yaml:20"},
		{ID: "CVE-2099-1004", Reason: "curl fix pending upstream", Expires: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Where: "hoist.yaml:24"},
	}
	o := f.options(t, p)
	var out bytes.Buffer
	o.Out = &out
	o.StepSummary = filepath.Join(t.TempDir(), "step-summary.md")
	os.WriteFile(o.StepSummary, []byte("# earlier step\n"), 0o644)

	res, err := scan.Run(t.Context(), o)
	t.Logf("terminal output:\n%s", out.String())
	if !errors.Is(err, scan.ErrBreached) {
		t.Fatalf("Run error %v, want ErrBreached", err)
	}
	if errors.Is(err, scan.ErrNotScanned) {
		t.Fatalf("an image could not be scanned: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"vulnerable: openssl 3.0.11-1~deb12u1 (fixed in 3.0.15-1~deb12u1) CVE-2099-1001 [HIGH]",
		"vulnerable: secret aws-access-key-id",
		"expired: curl 7.88.1-10+deb12u5 (fixed in 7.88.1-10+deb12u9) CVE-2099-1004 [HIGH]: ignore entry hoist.yaml:24 expired on 2026-11-01",
		"python: requests 2.25.0 (fixed in 2.31.0) CVE-2099-2001 [HIGH]",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, not := range []string{"clean:", "ignored:", "CVE-2099-1002"} {
		if strings.Contains(msg, not) {
			t.Errorf("error mentions %q, which does not block:\n%s", not, msg)
		}
	}

	byName := map[string]scan.ImageResult{}
	for _, r := range res.Images {
		byName[r.Name] = r
	}
	want := map[string]bool{"vulnerable": false, "clean": true, "ignored": true, "expired": false, "python": false}
	for name, pass := range want {
		r := byName[name]
		if r.Passed() != pass || r.Err != nil {
			t.Errorf("%s: passed=%v err=%v, want passed=%v", name, r.Passed(), r.Err, pass)
		}
		if r.OS != "debian 12.2" {
			t.Errorf("%s: OS %q, want debian 12.2 (Trivy did not detect the image)", name, r.OS)
		}
	}
	if fs := byName["clean"].Findings; len(fs) != 1 || fs[0].ID != "CVE-2099-1002" || fs[0].Verdict != scan.Below {
		t.Errorf("clean: findings %+v, want only CVE-2099-1002 below the threshold", fs)
	}
	if !strings.Contains(strings.Join(res.Notices, "\n"), "hoist.yaml:24: scan ignore CVE-2099-1004 expired on 2026-11-01") {
		t.Errorf("no notice for the expired ignore entry: %q", res.Notices)
	}

	// The lock file records each scan.
	l, err := lock.Read(f.lockPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, pass := range want {
		img, _ := l.Find(name)
		if img.Scan == nil {
			t.Fatalf("%s: no scan in the lock file", name)
		}
		s := img.Scan
		if s.Passed != pass || s.ImageID != f.images[name].ImageID || s.Scanner != "trivy "+trivy.Pinned || s.Error != "" || !strings.HasPrefix(s.DB, "trivy-db v2") {
			t.Errorf("%s: lock scan %+v", name, s)
		}
		if len(s.Reports) != 4 {
			t.Errorf("%s: reports %q, want json, txt, sarif, md", name, s.Reports)
		}
		for _, r := range s.Reports {
			if _, err := os.Stat(r); err != nil {
				t.Errorf("%s: report %s: %v", name, r, err)
			}
		}
	}
	ig, _ := l.Find("ignored")
	if len(ig.Scan.Findings) != 1 || ig.Scan.Findings[0].Blocking || !strings.Contains(ig.Scan.Findings[0].Ignored, "trusted bundled assets (until 2027-01-31)") {
		t.Errorf("ignored: lock findings %+v", ig.Scan.Findings)
	}
	vu, _ := l.Find("vulnerable")
	var blockingIDs []string
	for _, fd := range vu.Scan.Findings {
		if fd.Blocking {
			blockingIDs = append(blockingIDs, fd.ID+"/"+fd.Package+"/"+fd.Installed+"/"+fd.Fixed)
		}
	}
	if strings.Join(blockingIDs, " ") != "CVE-2099-1001/openssl/3.0.11-1~deb12u1/3.0.15-1~deb12u1 aws-access-key-id//app/settings.env//" &&
		strings.Join(blockingIDs, " ") != "aws-access-key-id//app/settings.env// CVE-2099-1001/openssl/3.0.11-1~deb12u1/3.0.15-1~deb12u1" {
		t.Errorf("vulnerable: blocking lock findings %q", blockingIDs)
	}

	// SARIF: valid JSON, the finding as an error, the ignored one suppressed.
	var sarif struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID       string `json:"ruleId"`
				Level        string `json:"level"`
				Suppressions []struct {
					Justification string `json:"justification"`
				} `json:"suppressions"`
			} `json:"results"`
		} `json:"runs"`
	}
	b, _ := os.ReadFile(filepath.Join(f.out, "ignored.sarif"))
	if err := json.Unmarshal(b, &sarif); err != nil || sarif.Version != "2.1.0" || len(sarif.Runs) != 1 || len(sarif.Runs[0].Results) != 1 {
		t.Fatalf("ignored.sarif: %v\n%s", err, b)
	}
	if r := sarif.Runs[0].Results[0]; r.RuleID != "CVE-2099-1003" || r.Level != "error" || len(r.Suppressions) != 1 || !strings.Contains(r.Suppressions[0].Justification, "trusted bundled assets") {
		t.Errorf("ignored.sarif result %+v", r)
	}

	// The step summary keeps what was there and adds the table.
	sum, _ := os.ReadFile(o.StepSummary)
	for _, want := range []string{"# earlier step\n## Image scan", "| vulnerable | ❌ fail | 2 | 0 | 1 |", "| clean | ✅ pass | 0 | 0 | 1 |", "| ignored | ✅ pass | 0 | 1 | 0 |", "| python | ❌ fail | 1 | 0 | 0 |", "### Notices"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("step summary lacks %q:\n%s", want, sum)
		}
	}
	if !strings.Contains(out.String(), "FAIL        vulnerable") || !strings.Contains(out.String(), "PASS        clean") {
		t.Errorf("terminal table:\n%s", out.String())
	}

	// The secret itself appears in no output Hoist wrote.
	var all []string
	filepath.Walk(filepath.Dir(f.out), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.Contains(p, "trivy-cache") {
			all = append(all, p)
		}
		return nil
	})
	all = append(all, o.StepSummary)
	for _, p := range all {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(fakeKey)) {
			t.Errorf("%s contains the secret", p)
		}
	}
	if strings.Contains(out.String(), fakeKey) || strings.Contains(msg, fakeKey) {
		t.Error("terminal output or error contains the secret")
	}
}

// TestScanReusesUnchanged scans an image, scans it again (the report is
// reused and the gate still fails), then changes the DB: the image is
// scanned again and, with the advisory gone, passes. Rescan forces a scan.
func TestScanReusesUnchanged(t *testing.T) { testenv.EachEngine(t, testScanReusesUnchanged) }

func testScanReusesUnchanged(t *testing.T) {
	f := newFixture(t, map[string]map[string]string{"app": {"openssl": "3.0.11-1~deb12u1"}}, nil)
	o := f.options(t, basePolicy())
	cached := func() bool {
		t.Helper()
		res, err := scan.Run(t.Context(), o)
		if len(res.Images) != 1 {
			t.Fatalf("Run: %v", err)
		}
		return res.Images[0].Cached
	}
	if cached() {
		t.Fatal("first scan reused a report")
	}
	res, err := scan.Run(t.Context(), o)
	if !errors.Is(err, scan.ErrBreached) || !res.Images[0].Cached {
		t.Fatalf("second scan: cached=%v err=%v, want the earlier report reused and the gate failing", res.Images[0].Cached, err)
	}
	o.Rescan = true
	if cached() {
		t.Fatal("Rescan reused a report")
	}
	o.Rescan = false
	// A new DB (here: without the advisory) means a new scan.
	if _, err := scantest.WriteDB(t.Context(), testenv.RepoRoot(t), filepath.Dir(f.dbDir), []scantest.Advisory{
		{Source: "debian 12", Package: "bash", ID: "CVE-2099-1009", Fixed: "5.3", Severity: "HIGH"},
	}); err != nil {
		t.Fatal(err)
	}
	res, err = scan.Run(t.Context(), o)
	if err != nil || res.Images[0].Cached || !res.Images[0].Passed() {
		t.Fatalf("after a DB change: cached=%v err=%v, want a fresh scan that passes", res.Images[0].Cached, err)
	}
}

// TestScanWaitsForHeldDB holds the DB file's lock the way a running Trivy
// does, from another process: the scan says it waits and names that
// process, and the lock is released only once it has said so (the notice is
// the hook), after which the scan runs.
func TestScanWaitsForHeldDB(t *testing.T) { testenv.EachEngine(t, testScanWaitsForHeldDB) }

func testScanWaitsForHeldDB(t *testing.T) {
	testenv.Binary(t, "flock", "util-linux")
	f := newFixture(t, map[string]map[string]string{"app": {"openssl": "3.0.15-1~deb12u1"}}, nil)
	holder := exec.Command("flock", "-x", filepath.Join(f.dbDir, "trivy.db"), "-c", "echo locked; cat >/dev/null")
	release, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	locked, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release.Close(); holder.Wait() })
	if line, err := bufio.NewReader(locked).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("flock: %q, %v", line, err)
	}
	out := &noticeWriter{notice: "another Trivy holds the vulnerability DB", seen: make(chan struct{})}
	released := make(chan struct{})
	go func() {
		defer close(released)
		select {
		case <-out.seen:
		case <-t.Context().Done():
		}
		release.Close() // cat ends, and with it the lock
		holder.Wait()
	}()
	o := f.options(t, basePolicy())
	o.Out = out
	_, err = scan.Run(t.Context(), o)
	<-released
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	select {
	case <-out.seen:
	default:
		t.Fatalf("no waiting notice:\n%s", out.String())
	}
	pid := strconv.Itoa(holder.Process.Pid)
	if got := out.String(); !strings.Contains(got, "pid "+pid+" (flock -x ") || !regexp.MustCompile(`kill [0-9 ]*\b`+pid+`\b`).MatchString(got) {
		t.Errorf("the notice does not name the holder (pid %s) and how to stop it:\n%s", pid, got)
	}
}

// noticeWriter collects output and closes seen once notice was written.
type noticeWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notice string
	seen   chan struct{}
	once   sync.Once
}

func (w *noticeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.notice) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *noticeWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
