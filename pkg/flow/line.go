package flow

import (
	"fmt"
	"regexp"
	"strings"
)

// Line is what a run does with what it builds.
type Line string

const (
	// Verify builds and tests only, never pushes: pull requests, forks,
	// other branches.
	Verify Line = "verify"
	// Staging builds, reserves X.Y.Z-staging.N, pushes and publishes a
	// prerelease.
	Staging Line = "staging"
	// Main promotes the staging build to X.Y.Z without rebuilding, tags the
	// commit X.Y.Z and publishes the release.
	Main Line = "main"
	// Release builds and pushes the version of a vX.Y.Z tag.
	Release Line = "release"
	// Rebuild rebuilds the release at HEAD with fresh bases and publishes
	// it as the next revision X.Y.Z-rN, moving X.Y.Z (and X.Y, X when it is
	// the newest there) to it; latest never moves.
	Rebuild Line = "rebuild"
	// Local runs the whole pipeline on this machine: staging build, reserve
	// (in a private repository under the build folder), push to the local
	// registry, then promote to X.Y.Z there. Nothing shared is touched.
	Local Line = "local"
)

// Decision is the line of a run and why.
type Decision struct {
	Line   Line
	Branch string // the branch, for Staging and Main
	Tag    string // the tag, for Release
	Why    string
}

// Branches names the branches of the two branch lines.
type Branches struct {
	Staging, Main string
}

// Event is what started a run: its ref, and for CI what kind of run.
type Event struct {
	Ref string
	PR  bool
	// Name is the CI event (GITHUB_EVENT_NAME): schedule, workflow_dispatch,
	// push, …; empty outside CI.
	Name string
	// FreshBases: the run was asked to rebuild with fresh bases
	// (HOIST_REBUILD=1, the workflow's rebuild_base).
	FreshBases bool
}

// DecideEvent picks the line of a run: a scheduled run, or a manual one
// (workflow_dispatch) asking for fresh bases, is the rebuild line; anything
// else is decided by its ref (Decide). A pull request never rebuilds.
func DecideEvent(e Event, b Branches) Decision {
	if !e.PR {
		switch {
		case e.Name == "schedule":
			return Decision{Line: Rebuild, Why: "scheduled run: rebuild the release at HEAD with fresh bases as its next revision"}
		case e.Name == "workflow_dispatch" && e.FreshBases:
			return Decision{Line: Rebuild, Why: "manual run with fresh bases: rebuild the release at HEAD as its next revision"}
		}
	}
	return Decide(e.Ref, e.PR, b)
}

var releaseTag = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// Decide picks the line from a git ref (GITHUB_REF's form:
// refs/heads/BRANCH, refs/tags/TAG, refs/pull/N/merge; a bare branch name
// also works). pr forces Verify: a fork or pull request never pushes.
func Decide(ref string, pr bool, b Branches) Decision {
	if pr {
		return Decision{Line: Verify, Why: "pull request or fork: build and test only, never push"}
	}
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		return branch(strings.TrimPrefix(ref, "refs/heads/"), b)
	case strings.HasPrefix(ref, "refs/tags/"):
		tag := strings.TrimPrefix(ref, "refs/tags/")
		if releaseTag.MatchString(tag) {
			return Decision{Line: Release, Tag: tag, Why: fmt.Sprintf("release tag %s", tag)}
		}
		// X.Y.Z and X.Y.Z-staging.N are written by Hoist itself; a build of
		// them would republish what was already published.
		return Decision{Line: Verify, Tag: tag, Why: fmt.Sprintf("tag %s is not a vX.Y.Z release tag: build and test only", tag)}
	case strings.HasPrefix(ref, "refs/pull/"):
		return Decision{Line: Verify, Why: "pull request " + ref + ": build and test only, never push"}
	case ref == "":
		return Decision{Line: Verify, Why: "no branch or tag (detached checkout): build and test only"}
	case !strings.HasPrefix(ref, "refs/"):
		return branch(ref, b)
	}
	return Decision{Line: Verify, Why: "ref " + ref + ": build and test only"}
}

func branch(name string, b Branches) Decision {
	switch name {
	case b.Staging:
		return Decision{Line: Staging, Branch: name, Why: fmt.Sprintf("branch %s: staging build, reserve, push", name)}
	case b.Main:
		return Decision{Line: Main, Branch: name, Why: fmt.Sprintf("branch %s: promote the staging build", name)}
	}
	return Decision{Line: Verify, Branch: name, Why: fmt.Sprintf("branch %s is neither %s nor %s: build and test only", name, b.Staging, b.Main)}
}
