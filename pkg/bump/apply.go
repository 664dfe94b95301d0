package bump

import (
	"fmt"
	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/changelog"
)

// Result is what Apply did (or, in a dry run, would do).
type Result struct {
	From, To         string // in the file's style, e.g. v1.2.0 → v1.2.1-rc.1
	Version          *semver.Version
	Changelog        string // path of X.Y.Z.md
	ChangelogCreated bool   // it was missing and was created from the template
	ChangelogExists  bool
}

// Apply bumps the VERSION file at path by step, keeping its style, and
// makes sure the changelog of the new version exists in changelogs, so notes
// can be written as work lands. A dry run computes everything and writes
// nothing. Nothing is written when the bump is refused.
func Apply(path, changelogs, step string, dryRun bool) (*Result, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	next, err := Next(f.Version, step)
	if err != nil {
		return nil, err
	}
	r := &Result{From: f.String(), To: Format(next, f.LeadingV), Version: next, Changelog: changelog.Path(changelogs, next)}
	if dryRun {
		_, err := changelog.Read(changelogs, next)
		r.ChangelogExists = err == nil
		return r, nil
	}
	// The changelog first: if it cannot be created, VERSION is unchanged.
	if r.Changelog, r.ChangelogCreated, err = changelog.Ensure(changelogs, next); err != nil {
		return nil, err
	}
	r.ChangelogExists = true
	if err := f.Write(next); err != nil {
		return nil, err
	}
	return r, nil
}

// Describe is the one line a bump prints: the change and the changelog's
// state (changelog is the path as it should be shown).
func (r *Result) Describe(changelog string, dryRun bool) string {
	note := "exists"
	switch {
	case dryRun && !r.ChangelogExists:
		note = "would be created"
	case r.ChangelogCreated:
		note = "created: write the notes there as work lands"
	}
	prefix := ""
	if dryRun {
		prefix = "dry run, nothing written: "
	}
	return fmt.Sprintf("%sVERSION %s → %s; changelog %s %s", prefix, r.From, r.To, changelog, note)
}
