package flow

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	b := Branches{Staging: "staging", Main: "main"}
	tests := []struct {
		name   string
		ref    string
		pr     bool
		line   Line
		branch string
		tag    string
	}{
		{name: "staging branch", ref: "refs/heads/staging", line: Staging, branch: "staging"},
		{name: "main branch", ref: "refs/heads/main", line: Main, branch: "main"},
		{name: "bare branch name", ref: "staging", line: Staging, branch: "staging"},
		{name: "release tag", ref: "refs/tags/v1.2.3", line: Release, tag: "v1.2.3"},
		{name: "prerelease tag", ref: "refs/tags/v1.2.3-rc.1", line: Release, tag: "v1.2.3-rc.1"},
		{name: "hoist's own release tag", ref: "refs/tags/1.2.3", line: Verify, tag: "1.2.3"},
		{name: "hoist's own staging tag", ref: "refs/tags/1.2.3-staging.4", line: Verify, tag: "1.2.3-staging.4"},
		{name: "loose tag", ref: "refs/tags/v1.2", line: Verify, tag: "v1.2"},
		{name: "feature branch", ref: "refs/heads/feature/x", line: Verify, branch: "feature/x"},
		{name: "pull request ref", ref: "refs/pull/12/merge", line: Verify},
		{name: "pull request on staging", ref: "refs/heads/staging", pr: true, line: Verify},
		{name: "fork tag", ref: "refs/tags/v1.2.3", pr: true, line: Verify},
		{name: "detached, no ref", ref: "", line: Verify},
		{name: "other ref", ref: "refs/notes/x", line: Verify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.ref, tt.pr, b)
			if d.Line != tt.line || d.Branch != tt.branch || d.Tag != tt.tag || d.Why == "" {
				t.Fatalf("Decide(%q, %v) = %+v, want line %s branch %q tag %q", tt.ref, tt.pr, d, tt.line, tt.branch, tt.tag)
			}
		})
	}
}

func TestDecideEvent(t *testing.T) {
	b := Branches{Staging: "staging", Main: "main"}
	for _, tt := range []struct {
		name string
		e    Event
		line Line
	}{
		{name: "weekly schedule", e: Event{Ref: "refs/heads/main", Name: "schedule"}, line: Rebuild},
		{name: "schedule without fresh bases asked", e: Event{Ref: "refs/heads/main", Name: "schedule", FreshBases: false}, line: Rebuild},
		{name: "manual rebuild_base", e: Event{Ref: "refs/heads/main", Name: "workflow_dispatch", FreshBases: true}, line: Rebuild},
		{name: "manual staging run", e: Event{Ref: "refs/heads/staging", Name: "workflow_dispatch"}, line: Staging},
		{name: "push with fresh bases stays on its ref's line", e: Event{Ref: "refs/heads/staging", Name: "push", FreshBases: true}, line: Staging},
		{name: "pull request never rebuilds", e: Event{Ref: "refs/pull/1/merge", Name: "schedule", PR: true}, line: Verify},
		{name: "no event", e: Event{Ref: "refs/tags/v1.2.3"}, line: Release},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if d := DecideEvent(tt.e, b); d.Line != tt.line || d.Why == "" {
				t.Fatalf("DecideEvent(%+v) = %+v, want %s", tt.e, d, tt.line)
			}
		})
	}
}

func TestRunStopsAtFirstFailure(t *testing.T) {
	var ran []string
	step := func(name string, err error) Step {
		return Step{Name: name, Run: func(context.Context) error { ran = append(ran, name); return err }}
	}
	boom := errors.New("boom")
	var out bytes.Buffer
	err := Run(context.Background(), &out, []Step{step("Images", nil), step("Test", boom), step("Push", nil)}, false)
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "Test: ") {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(ran, ",") != "Images,Test" {
		t.Fatalf("ran %v", ran)
	}
	if !strings.Contains(out.String(), "not run: Push") {
		t.Fatalf("output does not say what was skipped:\n%s", out.String())
	}
}

func TestRunMissingStageFails(t *testing.T) {
	pushed := false
	steps := []Step{{Name: "Scan"}, {Name: "Push", Run: func(context.Context) error { pushed = true; return nil }}}
	err := Run(context.Background(), &bytes.Buffer{}, steps, false)
	if !errors.Is(err, ErrMissing) || pushed {
		t.Fatalf("err = %v, pushed = %v", err, pushed)
	}
}

func TestRunDryRunRunsNothing(t *testing.T) {
	ran := false
	steps := []Step{
		{Name: "Reserve", Writes: []string{"git tag 1.2.3-staging.4"}, Run: func(context.Context) error { ran = true; return nil }},
		{Name: "Scan"},
		{Name: "Push", Writes: []string{"image tags 1.2.3-staging.4, staging"}, Run: func(context.Context) error { ran = true; return nil }},
	}
	var out bytes.Buffer
	if err := Run(context.Background(), &out, steps, true); err != nil || ran {
		t.Fatalf("err = %v, ran = %v", err, ran)
	}
	want := "dry run: [1/3] Reserve: would write git tag 1.2.3-staging.4\n" +
		"dry run: [2/3] Scan (not available in this build: a real run stops here)\n" +
		"dry run: [3/3] Push: would write image tags 1.2.3-staging.4, staging\n"
	if out.String() != want {
		t.Fatalf("dry run printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	steps := []Step{
		{Name: "Images", Run: func(context.Context) error { cancel(); return nil }},
		{Name: "Push", Run: func(context.Context) error { t.Fatal("Push ran after cancel"); return nil }},
	}
	if err := Run(ctx, &bytes.Buffer{}, steps, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzDecide: any ref gives a line with a reason; Release only for a
// vX.Y.Z tag; a pull request or fork never gets a pushing line.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{"refs/heads/staging", "refs/heads/main", "refs/tags/v1.2.3", "refs/tags/v1.2.3-rc.1", "refs/tags/1.2.3", "refs/pull/1/merge", "", "main", "refs/tags/v01.2.3", "refs/heads/"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, ref string, pr bool) {
		d := Decide(ref, pr, Branches{Staging: "staging", Main: "main"})
		if d.Why == "" {
			t.Fatalf("%q: no reason", ref)
		}
		if pr && d.Line != Verify {
			t.Fatalf("%q in a pull request: line %s", ref, d.Line)
		}
		if d.Line == Release && (!strings.HasPrefix(ref, "refs/tags/v") || d.Tag != strings.TrimPrefix(ref, "refs/tags/")) {
			t.Fatalf("%q: release line with tag %q", ref, d.Tag)
		}
		if (d.Line == Staging || d.Line == Main) && d.Branch != "staging" && d.Branch != "main" {
			t.Fatalf("%q: line %s on branch %q", ref, d.Line, d.Branch)
		}
	})
}
