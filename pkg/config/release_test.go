package config

import (
	"strings"
	"testing"
)

func TestReleaseSection(t *testing.T) {
	dir := repo(t)
	base := "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\n"
	c, err := Parse("hoist.yaml", dir, []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Release; r.Reserve != "git" || r.Remote != "origin" || r.StagingBranch != "staging" || r.MainBranch != "main" || r.GitHubAPI != "https://api.github.com" {
		t.Fatalf("defaults: %+v", r)
	}
	for _, tt := range []struct{ yaml, want string }{
		{yaml: "release:\n  reserve: svn\n", want: `hoist.yaml:4: release reserve "svn": use git`},
		{yaml: "release:\n  reserve: github\n", want: "release reserve is github but release.github is not set"},
		{yaml: "release:\n  staging_branch: main\n", want: `staging_branch and main_branch are both "main"`},
		{yaml: "release:\n  reserv: git\n", want: `unknown key "reserv" in a release section`},
	} {
		_, err := Parse("hoist.yaml", dir, []byte(base+tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
	if _, err := Parse("hoist.yaml", dir, []byte(base+"release:\n  reserve: github\n  github: acme/widgets\n")); err != nil {
		t.Fatal(err)
	}
}
