// Package gitref reserves release versions by creating tags on a remote.
//
// A staging build's version X.Y.Z-staging.N is reserved by creating the tag
// refs/tags/X.Y.Z-staging.N at the build's commit, never by reading the
// highest N and then writing: the create itself is the lock. Creating a tag
// that exists fails atomically on every git server (a non-forced push of a
// new tag) and on GitHub's Git references API (422 "Reference already
// exists"), so when two builds race for the same N exactly one wins and the
// other moves on to N+1. Listing the remote's tags is only a hint of where
// to start; a registry's tags never pick N.
package gitref

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/version"
)

// Channel is the prerelease name of reserved versions: X.Y.Z-staging.N.
const Channel = version.Channel

// Outcomes callers branch on.
var (
	// ErrExists: the tag exists on the remote. Errors wrapping it are
	// *ExistsError when the backend knows more.
	ErrExists = errors.New("tag already exists")
	// ErrElsewhere: an exact tag (an override, or X.Y.Z on promote) exists
	// and points at another commit.
	ErrElsewhere = errors.New("tag exists at another commit")
	// ErrNoRemote: the remote is not configured or not a repository.
	ErrNoRemote = errors.New("no such remote")
	// ErrAuth: the remote refused the credentials, or none were given.
	ErrAuth = errors.New("remote refused the credentials")
)

// Reserver creates and reads tags on one remote. Backends: Git (any git
// server through the git program) and GitHub (the Git references API).
type Reserver interface {
	// CreateTag creates refs/tags/name at sha and fails, wrapping
	// ErrExists, when the tag exists, whatever it points at. It never
	// moves an existing tag.
	CreateTag(ctx context.Context, name, sha string) error
	// Tag returns the commit the tag points at (annotated tags peeled),
	// and false when the remote has no such tag.
	Tag(ctx context.Context, name string) (sha string, ok bool, err error)
	// Tags lists the remote's tag names that start with prefix.
	Tags(ctx context.Context, prefix string) ([]string, error)
	// String names the remote for messages (no credentials).
	String() string
}

// Reservation is a reserved version.
type Reservation struct {
	Tag      string          // git tag name, e.g. 1.2.3-staging.4
	Version  *semver.Version // the same as a version
	SHA      string          // commit the tag points at
	N        uint64          // the staging counter (0 for a non-staging exact tag)
	Existing bool            // the tag was already there, at this commit
	Attempts int             // tags tried, for the record
}

// StagingTag is the tag of base's staging build n (version.Staging).
func StagingTag(base *semver.Version, n uint64) string { return version.Staging(base, n) }

// ParseStaging splits X.Y.Z-staging.N into X.Y.Z and N (version.ParseStaging).
func ParseStaging(tag string) (base *semver.Version, n uint64, ok bool) {
	return version.ParseStaging(tag)
}

// First is the counter of the first staging build of a version.
const First = version.FirstStaging

// maxAttempts bounds one reservation; reaching it means something other than
// a race is wrong (e.g. the remote reports every tag as existing).
const maxAttempts = 1000

// Hint returns the N Reserve tries first for base: one past the highest
// staging tag of base on the remote (First when there is none). It is only
// a starting point; Reserve stays correct when it is stale.
func Hint(ctx context.Context, r Reserver, base *semver.Version) (uint64, error) {
	base = version.Base(base)
	prefix := base.String() + "-" + Channel + "."
	tags, err := r.Tags(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("listing %s tags on %s: %w", prefix+"*", r, err)
	}
	next := uint64(First)
	for _, t := range tags {
		b, n, ok := ParseStaging(t)
		if ok && b.Equal(base) && n >= next && n < ^uint64(0) {
			next = n + 1
		}
	}
	return next, nil
}

// Reserve reserves the next free base-staging.N at sha by creating its tag,
// starting from Hint. When the tag exists it backs off briefly, reads the
// hint again and tries the next number past both. Correctness rests on the
// create alone, never on the hint: every successful call gets its own N,
// however many run at once, on one machine or many.
func Reserve(ctx context.Context, r Reserver, base *semver.Version, sha string) (*Reservation, error) {
	base = version.Base(base)
	n, err := Hint(ctx, r, base)
	if err != nil {
		return nil, fmt.Errorf("reserving a %s version: %w", base, err)
	}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reserving a %s version: %w", base, err)
		}
		tag := StagingTag(base, n)
		err := r.CreateTag(ctx, tag, sha)
		if err == nil {
			return &Reservation{Tag: tag, Version: semver.MustParse(tag), SHA: sha, N: n, Attempts: attempt}, nil
		}
		if !errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("reserving %s at %s on %s: %w", tag, short(sha), r, err)
		}
		if n == ^uint64(0) {
			return nil, fmt.Errorf("reserving a %s version: every staging number up to %d is taken: bump VERSION", base, n)
		}
		n++
		// Others are reserving too. Back off for a random time that grows
		// with each collision (a crowd of runs then stops colliding on the
		// same number), and skip past the tags they took meanwhile.
		if err := backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("reserving a %s version: %w", base, err)
		}
		// A failed re-read only loses the shortcut; the create stays the lock.
		if h, err := Hint(ctx, r, base); err == nil && h > n {
			n = h
		}
	}
	return nil, fmt.Errorf("reserving a %s version on %s: %d tags in a row already exist: check the remote, or bump VERSION", base, r, maxAttempts)
}

// backoff sleeps a random time in [0, min(10ms·2^attempt, 1s)).
func backoff(ctx context.Context, attempt int) error {
	limit := 10 * time.Millisecond << min(attempt, 7)
	limit = min(limit, time.Second)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReserveExact reserves exactly tag at sha: it creates the tag when absent,
// accepts it when it already points at sha, and fails with ErrElsewhere when
// it points at another commit. Overrides (a staging version chosen by hand)
// and release tags (X.Y.Z on promote) go through here.
func ReserveExact(ctx context.Context, r Reserver, tag, sha string) (*Reservation, error) {
	v, err := semver.StrictNewVersion(tag)
	if err != nil {
		return nil, fmt.Errorf("tag %q is not a version (%v): write X.Y.Z or X.Y.Z-staging.N", tag, err)
	}
	res := &Reservation{Tag: tag, Version: v, SHA: sha, Attempts: 1}
	if _, n, ok := ParseStaging(tag); ok {
		res.N = n
	}
	err = r.CreateTag(ctx, tag, sha)
	if err == nil {
		return res, nil
	}
	if !errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("creating tag %s at %s on %s: %w", tag, short(sha), r, err)
	}
	at, ok, lerr := r.Tag(ctx, tag)
	if lerr != nil {
		return nil, fmt.Errorf("tag %s exists on %s; reading where it points: %w", tag, r, lerr)
	}
	if !ok {
		return nil, fmt.Errorf("tag %s was reported as existing on %s but cannot be read back: run again", tag, r)
	}
	if at != sha {
		return nil, fmt.Errorf("tag %s on %s points at %s, not at this commit %s: %w: choose another version (tags are never moved)", tag, r, short(at), short(sha), ErrElsewhere)
	}
	res.Existing = true
	return res, nil
}

// Check tells, without writing anything, what ReserveExact would do: nil
// when tag is absent or at sha, ErrElsewhere when at another commit. It is
// the dry-run and preflight form of an override.
func Check(ctx context.Context, r Reserver, tag, sha string) (exists bool, err error) {
	at, ok, err := r.Tag(ctx, tag)
	if err != nil {
		return false, fmt.Errorf("reading tag %s on %s: %w", tag, r, err)
	}
	if ok && at != sha {
		return true, fmt.Errorf("tag %s on %s points at %s, not at this commit %s: %w: choose another version (tags are never moved)", tag, r, short(at), short(sha), ErrElsewhere)
	}
	return ok, nil
}

// ExistsError is ErrExists with where the tag points, when known.
type ExistsError struct {
	Tag string
	SHA string // "" when the backend did not say
}

func (e *ExistsError) Error() string {
	if e.SHA != "" {
		return fmt.Sprintf("tag %s already exists (at %s)", e.Tag, short(e.SHA))
	}
	return fmt.Sprintf("tag %s already exists", e.Tag)
}

// Is makes errors.Is(err, ErrExists) true.
func (e *ExistsError) Is(target error) bool { return target == ErrExists }

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// redact removes credentials from URLs in s (https://user:token@host/…).
func redact(s string) string {
	return userinfo.ReplaceAllString(s, "${1}***@")
}

// oneLine squeezes git's multi-line stderr into one line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "hint:") {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// Build is one staging build reserved on the remote.
type Build struct {
	Tag string // X.Y.Z-staging.N
	N   uint64
	SHA string // the commit the reservation tag points at
}

// StagingBuilds lists base's staging reservations on the remote with the
// commits they point at, highest N first.
func StagingBuilds(ctx context.Context, r Reserver, base *semver.Version) ([]Build, error) {
	base = version.Base(base)
	prefix := base.String() + "-" + Channel + "."
	tags, err := r.Tags(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %s tags on %s: %w", prefix+"*", r, err)
	}
	var out []Build
	for _, t := range tags {
		b, n, ok := ParseStaging(t)
		if !ok || !b.Equal(base) {
			continue
		}
		sha, ok, err := r.Tag(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("reading tag %s on %s: %w", t, r, err)
		}
		if ok {
			out = append(out, Build{Tag: t, N: n, SHA: sha})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N > out[j].N })
	return out, nil
}
