package scan

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// demoResult reads a real Trivy 0.58 report (testdata/demo.trivy.json: an
// image with a vulnerable openssl, a MEDIUM libc6, an unfixed zlib1g and an
// AWS key) and applies a policy with one ignore entry.
func demoResult(t *testing.T) *Result {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "demo.trivy.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ParseReport(b)
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Severity: []string{"HIGH", "CRITICAL"}, Scanners: []string{"vuln", "secret"}, Ignore: []Ignore{
		{ID: "CVE-2099-1003", Package: "zlib1g", Reason: "only inflates | trusted assets", Expires: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), Where: "hoist.yaml:20"},
	}}
	img := ImageResult{Name: "demo-cpu-py3.12", Ref: "hoist/demo-cpu-py3.12:1.2.3", ImageID: rep.Metadata.ImageID, OS: "debian 12.2", Findings: rep.Findings()}
	notices, _ := p.Apply(img.Name, img.Findings, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	clean := ImageResult{Name: "demo-gpu-py3.12", Ref: "hoist/demo-gpu-py3.12:1.2.3", ImageID: "sha256:" + strings.Repeat("0", 64), OS: "debian 12.2"}
	broken := ImageResult{Name: "demo-gpu-py3.13", Ref: "hoist/demo-gpu-py3.13:1.2.3", Err: errString("scanning demo-gpu-py3.13: trivy did not finish within 10m0s: raise scan.timeout in hoist.yaml")}
	return &Result{
		Images: []ImageResult{img, clean, broken}, Notices: notices, Scanner: "trivy 0.58.0",
		DB: DBInfo{Version: 2, UpdatedAt: time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)},
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestRenderGolden(t *testing.T) {
	res := demoResult(t)
	var table bytes.Buffer
	WriteTable(&table, res)
	golden(t, "table.golden", table.Bytes())
	var full strings.Builder
	writeImageTable(&full, res.Images[0], true)
	golden(t, "image-table.golden", []byte(full.String()))
	golden(t, "summary.md.golden", []byte(Markdown(res)))
	golden(t, "image.md.golden", []byte(imageMarkdown(res.Images[0], res)))
	sarif, err := SARIF(res.Images[0], res.Scanner)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "image.sarif.golden", sarif)
	var doc map[string]any
	if err := json.Unmarshal(sarif, &doc); err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	if err := verdict(res); err == nil || !strings.Contains(err.Error(), "demo-cpu-py3.12: openssl 3.0.11-1~deb12u1 (fixed in 3.0.15-1~deb12u1) CVE-2099-1001 [HIGH]") {
		t.Errorf("verdict: %v", err)
	}
}

func TestReportFindings(t *testing.T) {
	res := demoResult(t)
	got := map[string]Verdict{}
	for _, f := range res.Images[0].Findings {
		got[f.ID+" "+f.Package] = f.Verdict
	}
	want := map[string]Verdict{
		"CVE-2099-1001 openssl":               Blocking,
		"CVE-2099-1002 libc6":                 Below,
		"CVE-2099-1003 zlib1g":                Ignored,
		"aws-access-key-id /app/settings.env": Blocking,
	}
	if len(got) != len(want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

func TestParseReportRejects(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{name: "not json", in: "FATAL something", wantErr: "not a Trivy JSON report"},
		{name: "empty object", in: "{}", wantErr: "schema 0"},
		{name: "no artifact", in: `{"SchemaVersion":2}`, wantErr: "names no artifact"},
		{name: "wrong types", in: `{"SchemaVersion":2,"ArtifactName":"x","Results":{}}`, wantErr: "not a Trivy JSON report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseReport([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseReport(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "demo.trivy.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"SchemaVersion":2,"ArtifactName":"x","Results":[{"Target":"t","Secrets":[{"RuleID":"r","Severity":"weird"}]}]}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ParseReport(b)
		if err != nil {
			return
		}
		fs := rep.Findings()
		p := Policy{Severity: []string{"HIGH", "CRITICAL"}, Scanners: []string{"vuln"}}
		p.Apply("x", fs, time.Now())
		for _, f := range fs {
			if _, ok := severityRank[f.Severity]; !ok || f.Verdict == "" {
				t.Fatalf("finding %+v: unknown severity or no verdict", f)
			}
		}
		img := ImageResult{Name: "x", Ref: "x:1", Findings: fs}
		if _, err := SARIF(img, "trivy 0.58.0"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTrivyErrorLine(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{name: "fatal with detail", out: "2026-11-21T05:31:22Z\tINFO\tstarting\n2026-11-21T05:31:22Z\tFATAL\tFatal error\timage scan error: 1 error occurred:\n\t* docker error: cannot connect\n\n",
			want: "image scan error: 1 error occurred: docker error: cannot connect"},
		{name: "error line", out: "2026-11-21T05:31:22Z\tERROR\tfailed to open DB\n", want: "failed to open DB"},
		{name: "plain output", out: "panic: runtime error\ngoroutine 1 [running]:\n", want: "trivy crashed: panic: runtime error"},
		{name: "nothing", out: "", want: "no output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tb tailBuffer
			tb.Write([]byte(tt.out))
			if got := tb.last(); got != tt.want {
				t.Fatalf("last() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzTrivyErrorLine(f *testing.F) {
	f.Add("2026-11-21T05:31:22Z\tFATAL\tFatal error\timage scan error: 1 error occurred:\n\t* docker error\n")
	f.Add("panic: boom\n")
	f.Add("\t\t\n")
	f.Fuzz(func(t *testing.T, s string) {
		var tb tailBuffer
		tb.Write([]byte(s))
		got := tb.last()
		if got == "" || strings.Contains(got, "\n") || len(got) > 700 {
			t.Fatalf("last() = %q: want one non-empty, bounded line", got)
		}
	})
}
