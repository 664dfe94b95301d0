package tags

import (
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/hoistci/hoist/pkg/version"
)

func names(ts []Tag) []string {
	var out []string
	for _, t := range ts {
		n := t.Name
		if t.Floating {
			n += "*"
		}
		out = append(out, n)
	}
	return out
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		existing []string
		want     []string // * marks floating
	}{
		{name: "first release", version: "1.2.3", want: []string{"1.2.3", "1.2*", "1*", "latest*"}},
		{name: "release after older ones", version: "1.3.0", existing: []string{"1.2.9", "1.2", "1", "latest"}, want: []string{"1.3.0", "1.3*", "1*", "latest*"}},
		{name: "patch of an older line does not move latest or major", version: "1.2.9", existing: []string{"1.3.0", "1.2.8", "latest", "1", "1.3", "1.2"}, want: []string{"1.2.9", "1.2*"}},
		{name: "old major keeps its own major tag", version: "1.9.0", existing: []string{"2.0.0"}, want: []string{"1.9.0", "1.9*", "1*"}},
		{name: "re-push of the same release", version: "1.2.3", existing: []string{"1.2.3", "1.2", "1", "latest"}, want: []string{"1.2.3", "1.2*", "1*", "latest*"}},
		{name: "prerelease gets only its own tag", version: "1.2.3-rc.1", existing: nil, want: []string{"1.2.3-rc.1"}},
		{name: "prereleases do not hold back latest", version: "1.2.3", existing: []string{"1.3.0-rc.1", "2.0.0-staging.4"}, want: []string{"1.2.3", "1.2*", "1*", "latest*"}},
		{name: "staging", version: "1.2.3-staging.4", want: []string{"1.2.3-staging.4", "staging*"}},
		{name: "staging numbers compare as numbers", version: "1.2.3-staging.10", existing: []string{"1.2.3-staging.9"}, want: []string{"1.2.3-staging.10", "staging*"}},
		{name: "older staging does not move staging", version: "1.2.3-staging.9", existing: []string{"1.2.3-staging.10"}, want: []string{"1.2.3-staging.9"}},
		{name: "staging of an older base", version: "1.2.3-staging.1", existing: []string{"1.3.0-staging.0"}, want: []string{"1.2.3-staging.1"}},
		{name: "releases do not hold back staging", version: "1.2.3-staging.1", existing: []string{"9.0.0"}, want: []string{"1.2.3-staging.1", "staging*"}},
		{name: "first rebuild moves the pointers, never latest", version: "1.2.3-r1", existing: []string{"1.2.3", "1.2", "1", "latest"}, want: []string{"1.2.3-r1", "1.2.3*", "1.2*", "1*"}},
		{name: "second rebuild follows the first", version: "1.2.3-r2", existing: []string{"1.2.3", "1.2.3-r1", "1.2", "1", "latest"}, want: []string{"1.2.3-r2", "1.2.3*", "1.2*", "1*"}},
		{name: "revisions compare as numbers", version: "1.2.3-r10", existing: []string{"1.2.3-r9", "1.2.3"}, want: []string{"1.2.3-r10", "1.2.3*", "1.2*", "1*"}},
		{name: "an older revision moves nothing", version: "1.2.3-r1", existing: []string{"1.2.3-r2", "1.2.3"}, want: []string{"1.2.3-r1"}},
		{name: "rebuild of an older release keeps 1.3, 1 and latest", version: "1.2.3-r1", existing: []string{"1.2.3", "1.3.0", "1.3", "1.2", "1", "latest"}, want: []string{"1.2.3-r1", "1.2.3*", "1.2*"}},
		{name: "rebuild of an older patch keeps 1.2", version: "1.2.3-r1", existing: []string{"1.2.3", "1.2.4"}, want: []string{"1.2.3-r1", "1.2.3*"}},
		{name: "rebuild of an older major keeps its major", version: "1.2.3-r1", existing: []string{"1.2.3", "2.0.0"}, want: []string{"1.2.3-r1", "1.2.3*", "1.2*", "1*"}},
		{name: "revisions of other releases do not count", version: "1.2.3-r1", existing: []string{"1.2.3", "1.2.2-r7", "0.9.0-r3"}, want: []string{"1.2.3-r1", "1.2.3*", "1.2*", "1*"}},
		{name: "a rebuilt release moves no floating tag again", version: "1.2.3", existing: []string{"1.2.3", "1.2.3-r1", "1.2", "1", "latest"}, want: []string{"1.2.3"}},
		{name: "revisions of older releases do not hold back a new one", version: "1.3.0", existing: []string{"1.2.3-r4"}, want: []string{"1.3.0", "1.3*", "1*", "latest*"}},
		{name: "non-version tags ignored", version: "0.1.0", existing: []string{"sha256-abc.sig", "main", "v9.9.9"}, want: []string{"0.1.0", "0.1*", "0*", "latest*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(semver.MustParse(tc.version), tc.existing)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tc.want) {
				t.Errorf("Plan(%s, %v) = %v, want %v", tc.version, tc.existing, names(got), tc.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		version string
		want    Kind
	}{
		{version: "1.2.3", want: Release},
		{version: "1.2.3-rc.1", want: Prerelease},
		{version: "1.2.3-staging.0", want: Staging},
		{version: "1.2.3-staging.12", want: Staging},
		{version: "1.2.3-staging", want: Prerelease},
		{version: "1.2.3-staging.x", want: Prerelease},
		{version: "1.2.3-staging.1.2", want: Prerelease},
		{version: "1.2.3-stagingx.1", want: Prerelease},
		{version: "1.2.3-r1", want: Revision},
		{version: "1.2.3-r12", want: Revision},
		{version: "1.2.3-r0", want: Prerelease},
		{version: "1.2.3-r01", want: Prerelease},
		{version: "1.2.3-r", want: Prerelease},
		{version: "1.2.3-r1.2", want: Prerelease},
		{version: "1.2.3-rc1", want: Prerelease},
		{version: "1.2.3-r18446744073709551616", want: Prerelease},
	}
	for _, tc := range tests {
		if got := KindOf(semver.MustParse(tc.version)); got != tc.want {
			t.Errorf("KindOf(%s) = %v, want %v", tc.version, got, tc.want)
		}
	}
}

func TestForRefusesBuildMetadata(t *testing.T) {
	_, err := For(semver.MustParse("1.2.3+build.5"))
	if err == nil || !strings.Contains(err.Error(), "+build.5") {
		t.Fatalf("err = %v, want one naming the metadata", err)
	}
}

func TestPromotionN(t *testing.T) {
	tests := []struct {
		name     string
		perImage map[string][]string
		want     uint64
		wantErr  string
	}{
		{name: "minimum of maxima", perImage: map[string][]string{
			"a": {"1.2.3-staging.0", "1.2.3-staging.1", "1.2.3-staging.2", "staging"},
			"b": {"1.2.3-staging.0", "1.2.3-staging.1", "1.2.4-staging.7", "1.2.3-rc.9"},
		}, want: 1},
		{name: "numbers not strings", perImage: map[string][]string{
			"a": {"1.2.3-staging.9", "1.2.3-staging.10"},
		}, want: 10},
		{name: "image without staging", perImage: map[string][]string{
			"a": {"1.2.3-staging.0"}, "b": {"1.2.2-staging.3"},
		}, wantErr: "b has no 1.2.3-staging.N tag"},
		{name: "no images", perImage: map[string][]string{}, wantErr: "no images"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PromotionN("1.2.3", tc.perImage)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PromotionN = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// FuzzPlan checks the invariants of the policy for any version and tag list:
// the own tag comes first and is immutable, prereleases get nothing else,
// and a floating tag never moves backwards.
func FuzzPlan(f *testing.F) {
	f.Add("1.2.3", "1.3.0,latest,1")
	f.Add("1.2.3-staging.4", "1.2.3-staging.10")
	f.Add("0.0.1-rc.1", "")
	f.Add("2.0.0", "10.0.0,1.9.9")
	f.Add("1.2.3-r2", "1.2.3-r10,1.3.0,1.2.3")
	f.Add("1.2.3", "1.2.3-r1")
	f.Fuzz(func(t *testing.T, version, existing string) {
		v, err := semver.StrictNewVersion(version)
		if err != nil {
			return
		}
		ex := strings.Split(existing, ",")
		got, err := Plan(v, ex)
		if v.Metadata() != "" {
			if err == nil {
				t.Fatal("metadata accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[0].Name != v.String() || got[0].Floating {
			t.Fatalf("first tag %v, want immutable %s", got, v)
		}
		if KindOf(v) == Prerelease && len(got) != 1 {
			t.Fatalf("prerelease %s got %v", v, got)
		}
		for _, tg := range got[1:] {
			if KindOf(v) == Revision && tg.Name == Latest {
				t.Fatalf("revision %s moves latest", v)
			}
			for _, e := range ex {
				w, err := semver.StrictNewVersion(e)
				if err == nil && newer(tg.Name, v, w) {
					t.Fatalf("%s moves %s back past %s", v, tg.Name, w)
				}
				if err == nil && KindOf(v) != Revision && inScope(tg.Name, v, w) && w.GreaterThan(v) {
					t.Fatalf("%s moves %s back past %s", v, tg.Name, w)
				}
			}
		}
	})
}

func FuzzMaxStaging(f *testing.F) {
	f.Add("1.2.3", "1.2.3-staging.1,1.2.3-staging.01,1.2.3-staging.x")
	f.Fuzz(func(t *testing.T, base, existing string) {
		n, ok := MaxStaging(base, strings.Split(existing, ","))
		if ok && !slices.Contains(strings.Split(existing, ","), version.StagingTag(base, n)) {
			t.Fatalf("MaxStaging = %d, but %s is not in the list", n, version.StagingTag(base, n))
		}
	})
}

func TestRevisionTags(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		base string
		n    uint64
		ok   bool
	}{
		{tag: "1.2.3-r1", base: "1.2.3", n: 1, ok: true},
		{tag: "0.0.1-r42", base: "0.0.1", n: 42, ok: true},
		{tag: "1.2.3-r0"}, {tag: "1.2.3-r01"}, {tag: "v1.2.3-r1"}, {tag: "1.2.3-r1+b"}, {tag: "1.2.3-rc.1"}, {tag: "1.2.3"},
	} {
		b, n, ok := ParseRevision(tc.tag)
		if ok != tc.ok || (ok && (b.String() != tc.base || n != tc.n || RevisionTag(tc.base, n) != tc.tag)) {
			t.Errorf("ParseRevision(%q) = %v, %d, %v", tc.tag, b, n, ok)
		}
	}
	if n, ok := MaxRevision("1.2.3", []string{"1.2.3-r9", "1.2.3-r10", "1.2.4-r11", "1.2.3-r011", "latest"}); !ok || n != 10 {
		t.Fatalf("MaxRevision = %d, %v", n, ok)
	}
	if _, ok := MaxRevision("1.2.3", []string{"1.2.3", "1.2.3-staging.4"}); ok {
		t.Fatal("MaxRevision found a revision in none")
	}
}

func FuzzParseRevision(f *testing.F) {
	f.Add("1.2.3-r1")
	f.Add("1.2.3-r007")
	f.Fuzz(func(t *testing.T, s string) {
		b, n, ok := ParseRevision(s)
		if ok && (n < FirstRevision || RevisionTag(b.String(), n) != s) {
			t.Fatalf("ParseRevision(%q) = %s, %d", s, b, n)
		}
	})
}
