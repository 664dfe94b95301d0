package shard

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/pkg/lock"
)

func TestPlanBalancesByBuildTime(t *testing.T) {
	imgs := []string{"a", "b", "c", "d", "e", "f"}
	ms := map[string]int64{"a": 9000, "b": 8000, "c": 1000, "d": 1000, "e": 1000, "f": 0}
	parts := Plan(imgs, ms, 2)
	if len(parts) != 2 {
		t.Fatalf("parts %+v", parts)
	}
	// f has no time: it counts as the mean (4000). LPT: a→1, b→2, f→2?
	// 9000 vs 8000 → f to 2 (12000), c,d,e to 1 (12000).
	seen := map[string]int{}
	for _, p := range parts {
		for _, n := range p.Images {
			seen[n]++
		}
	}
	for _, n := range imgs {
		if seen[n] != 1 {
			t.Fatalf("%s in %d parts: %+v", n, seen[n], parts)
		}
	}
	if parts[0].Millis != 12000 || parts[1].Millis != 12000 {
		t.Fatalf("unbalanced: %+v", parts)
	}
	// Never more shards than images, never an empty shard.
	if p := Plan([]string{"x", "y"}, nil, 5); len(p) != 2 || len(p[0].Images) != 1 || len(p[1].Images) != 1 {
		t.Fatalf("2 images over 5 shards: %+v", p)
	}
	// With no times at all the split is by count.
	var many []string
	for i := range 10 {
		many = append(many, fmt.Sprintf("img%02d", i))
	}
	for _, p := range Plan(many, nil, 3) {
		if n := len(p.Images); n < 3 || n > 4 {
			t.Fatalf("by count: %+v", p)
		}
	}
	// The plan is the same whatever the input order (every runner agrees).
	rev := []string{"f", "e", "d", "c", "b", "a"}
	if a, b := fmt.Sprint(Plan(imgs, ms, 3)), fmt.Sprint(Plan(rev, ms, 3)); a != b {
		t.Fatalf("order changes the plan:\n%s\n%s", a, b)
	}
}

func TestMatrixAndSpec(t *testing.T) {
	m, err := Matrix(Plan([]string{"a", "b", "c"}, nil, 2))
	if err != nil {
		t.Fatal(err)
	}
	if string(m) != `{"include":[{"shard":"1/2","images":"a,c"},{"shard":"2/2","images":"b"}]}` {
		t.Fatalf("matrix %s", m)
	}
	for _, bad := range []string{"", "3", "0/2", "3/2", "a/b", "1/0", "1/257", "-1/2"} {
		if _, _, err := ParseSpec(bad); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSpec(%q) = %v", bad, err)
		}
	}
	if i, k, err := ParseSpec(" 2/3 "); err != nil || i != 2 || k != 3 {
		t.Fatalf("2/3: %d %d %v", i, k, err)
	}
}

const commit = "0123456789abcdef0123456789abcdef01234567"

// fragment writes shard index/count holding imgs, each tested, scanned
// and pushed by digest to reg/NAME.
func fragment(t *testing.T, dir string, index, count int, imgs ...string) string {
	t.Helper()
	l := &lock.Lock{Project: "p", Version: "1.0.0-staging.0", Revision: commit}
	for _, n := range imgs {
		d := "sha256:" + strings.Repeat(fmt.Sprintf("%x", len(n)%16), 64)
		l.Images = append(l.Images, lock.Image{Name: n, ImageID: "id-" + n,
			Test:   &lock.Test{Passed: true, ImageID: "id-" + n},
			Pushed: []lock.Pushed{{Ref: "127.0.0.1:5000/acme/" + n + "@" + d, Digest: d}}})
	}
	p, err := Write(dir, l, index, count, imgs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var want = Want{Images: []string{"a", "b", "c"}, Commit: commit, Version: "1.0.0-staging.0", Registry: "127.0.0.1:5000/acme"}

func TestJoinWhole(t *testing.T) {
	dir := t.TempDir()
	fragment(t, dir, 1, 2, "a", "c")
	fragment(t, filepath.Join(dir, "artifact-2"), 2, 2, "b")
	frags, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Join(frags, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 3 || l.Images[0].Name != "a" || l.Images[2].Name != "c" || l.Shard != nil || l.Revision != commit {
		t.Fatalf("merged %+v", l)
	}
}

// TestJoinRefuses: every way a set of fragments can fall short of one
// whole release is refused in one line that names the file or shard.
func TestJoinRefuses(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  Want
		says  string
	}{
		{"missing shard (killed)", func(t *testing.T, dir string) { fragment(t, dir, 1, 2, "a", "c") }, want, "shard 2/2 left no fragment"},
		{"truncated fragment", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			p := fragment(t, dir, 2, 2, "b")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, want, "shard-2-of-2.json is not a whole fragment"},
		{"duplicated fragment", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			fragment(t, dir, 2, 2, "b")
			fragment(t, filepath.Join(dir, "again"), 2, 2, "b")
		}, want, "shard 2/2 has two fragments"},
		{"two shards claim one image", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			fragment(t, dir, 2, 2, "b", "c")
		}, want, "image c is claimed by two shards"},
		{"an image in no shard", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a")
			fragment(t, dir, 2, 2, "b")
		}, want, "1 image(s) of hoist.yaml are in no shard (c)"},
		{"another commit", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			fragment(t, dir, 2, 2, "b")
		}, Want{Images: want.Images, Commit: strings.Repeat("f", 40), Version: want.Version, Registry: want.Registry}, "was built at commit 0123456789ab, this checkout is ffffffffffff"},
		{"another version", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			fragment(t, dir, 2, 2, "b")
		}, Want{Images: want.Images, Commit: commit, Version: "1.0.0-staging.1", Registry: want.Registry}, "is version 1.0.0-staging.0, this release is 1.0.0-staging.1"},
		{"two plans", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			fragment(t, dir, 2, 3, "b")
		}, want, "they come from two plans"},
		{"not pushed by digest", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			fragment(t, dir, 2, 2, "b")
		}, Want{Images: want.Images, Commit: commit, Version: want.Version, Registry: "127.0.0.1:5000/other"}, "did not push image a by digest to 127.0.0.1:5000/other"},
		{"not a fragment", func(t *testing.T, dir string) {
			fragment(t, dir, 1, 2, "a", "c")
			b, _ := json.Marshal(&lock.Lock{Schema: lock.SchemaVersion, Project: "p"})
			os.WriteFile(filepath.Join(dir, "lock.json"), b, 0o644)
		}, want, "lock.json is not a shard's lock"},
		{"empty folder", func(t *testing.T, dir string) {}, want, "no shard fragments in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(t, dir)
			frags, err := Read(dir)
			if err == nil {
				_, err = Join(frags, c.want)
			}
			if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, c.says)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("absent folder: %v", err)
	}
}
