// Package tags is Hoist's image tag policy, as plain functions over versions
// and tag lists: which tags a version gets, which of them are immutable, and
// whether a floating tag may move. It talks to no registry.
//
//   - release X.Y.Z: X.Y.Z (immutable), X.Y, X and latest (floating);
//   - prerelease X.Y.Z-rc.1 and the like: only its own tag;
//   - staging X.Y.Z-staging.N: its own tag plus floating staging;
//   - revision X.Y.Z-rN (N = 1, 2, …), a fresh-bases rebuild of the
//     released X.Y.Z: X.Y.Z-rN (immutable), then X.Y.Z, X.Y and X as
//     pointers to the newest revision; never latest.
//
// Floating tags move only forward in SemVer order: a floating tag is written
// only when no version in its scope already present in the repository is
// higher than the one being pushed. A revision counts as its X.Y.Z, newer
// than the release and than every lower revision of it: so X.Y.Z, X.Y and
// X move to X.Y.Z-rN only when no X.Y.Z-rM with M > N is there, and X.Y and
// X only when X.Y.Z is the newest release in their range. Once X.Y.Z has a
// revision, a push or promotion of the release X.Y.Z moves no floating tag
// (the revision is newer), and its X.Y.Z tag names the revision, so the
// release itself is never written again.
//
// X.Y.Z is thus written once by its release and afterwards moved only by a
// rebuild of that same release, forward, to a revision of it; a revision
// tag, like every other immutable tag, is never rewritten.
package tags

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/version"
)

// Kind is the kind of a version, which decides its tags.
type Kind int

const (
	Release    Kind = iota // X.Y.Z
	Prerelease             // X.Y.Z-anything that is not staging.N
	Staging                // X.Y.Z-staging.N
	Revision               // X.Y.Z-rN: a rebuild of release X.Y.Z
)

func (k Kind) String() string {
	switch k {
	case Release:
		return "release"
	case Prerelease:
		return "prerelease"
	case Staging:
		return "staging"
	case Revision:
		return "revision"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Floating tag names that are not version numbers.
const (
	Latest     = "latest"
	StagingTag = "staging"
)

// KindOf classifies v.
func KindOf(v *semver.Version) Kind {
	pre := v.Prerelease()
	if pre == "" {
		return Release
	}
	if _, ok := version.StagingN(v); ok {
		return Staging
	}
	if _, ok := RevisionN(v); ok {
		return Revision
	}
	return Prerelease
}

// Tag is one tag a version gets.
type Tag struct {
	Name string
	// Floating tags move between versions; immutable ones never change digest.
	Floating bool
}

// For returns the tags of version v, the immutable one first. A version with
// build metadata has no valid tag ('+' is not allowed in a tag).
func For(v *semver.Version) ([]Tag, error) {
	if v.Metadata() != "" {
		return nil, fmt.Errorf("version %s has build metadata, which an image tag cannot hold: drop the +%s part", v, v.Metadata())
	}
	own := Tag{Name: v.String()}
	switch KindOf(v) {
	case Release:
		return []Tag{
			own,
			{Name: fmt.Sprintf("%d.%d", v.Major(), v.Minor()), Floating: true},
			{Name: fmt.Sprintf("%d", v.Major()), Floating: true},
			{Name: Latest, Floating: true},
		}, nil
	case Staging:
		return []Tag{own, {Name: StagingTag, Floating: true}}, nil
	case Revision:
		// The pointers, not latest: a rebuild is not a new release.
		return []Tag{
			own,
			{Name: version.Base(v).String(), Floating: true},
			{Name: fmt.Sprintf("%d.%d", v.Major(), v.Minor()), Floating: true},
			{Name: fmt.Sprintf("%d", v.Major()), Floating: true},
		}, nil
	}
	return []Tag{own}, nil
}

// Names are the names of For's tags, for plans and messages; nil when For
// refuses v (build metadata), which pushing it then reports.
func Names(v *semver.Version) []string {
	all, err := For(v)
	if err != nil {
		return nil
	}
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name
	}
	return names
}

// inScope reports whether version w counts for floating tag f of version v:
// latest and staging look at every version of their kind, X at every release
// of major X, X.Y at every release of X.Y.
func inScope(f string, v, w *semver.Version) bool {
	switch f {
	case StagingTag:
		return KindOf(w) == Staging
	case Latest:
		return KindOf(w) == Release
	}
	if KindOf(w) != Release {
		return false
	}
	if f == fmt.Sprintf("%d", v.Major()) {
		return w.Major() == v.Major()
	}
	return w.Major() == v.Major() && w.Minor() == v.Minor()
}

// newer reports whether existing tag w holds floating tag f back from
// version v: w is in f's scope and after v. A revision of v's X.Y.Z is after
// the release and after every lower revision; a release or revision of
// another X.Y.Z is compared by its release.
func newer(f string, v, w *semver.Version) bool {
	if KindOf(v) == Release || KindOf(v) == Revision {
		if m, ok := RevisionN(w); ok && version.Base(w).Equal(version.Base(v)) {
			n, _ := RevisionN(v) // 0 for the release itself
			return m > n
		}
	}
	if KindOf(v) == Revision {
		switch f {
		case Latest:
			return true // a rebuild never moves latest
		case version.Base(v).String():
			return false // the X.Y.Z pointer looks only at revisions of X.Y.Z
		}
		return inScope(f, v, w) && w.GreaterThan(version.Base(v))
	}
	return inScope(f, v, w) && w.GreaterThan(v)
}

// Moves reports whether floating tag f may point at version v, given the
// tags already in the repository: it may unless a newer version in f's
// scope is there (see newer). Tags that are not versions are ignored.
func Moves(f string, v *semver.Version, existing []string) bool {
	if KindOf(v) == Revision && f == Latest {
		return false
	}
	for _, t := range existing {
		w, err := semver.StrictNewVersion(t)
		if err != nil {
			continue
		}
		if newer(f, v, w) {
			return false
		}
	}
	return true
}

// Plan returns the tags to write for v in a repository holding existing
// tags: its immutable tag always, and the floating tags that move forward.
func Plan(v *semver.Version, existing []string) ([]Tag, error) {
	all, err := For(v)
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, t := range all {
		if !t.Floating || Moves(t.Name, v, existing) {
			out = append(out, t)
		}
	}
	return out, nil
}

// MaxStaging returns the highest N among tags of the form base-staging.N, and
// false when there is none.
func MaxStaging(base string, existing []string) (uint64, bool) {
	var best uint64
	found := false
	for _, t := range existing {
		b, n, ok := version.ParseStaging(t)
		if !ok || b.String() != base {
			continue
		}
		if !found || n > best {
			best, found = n, true
		}
	}
	return best, found
}

// PromotionN chooses the staging build to promote: the minimum over images of
// each image's highest base-staging.N, so every image has it. perImage maps
// an image name to its repository's tags. It fails naming an image with no
// staging build of base.
func PromotionN(base string, perImage map[string][]string) (uint64, error) {
	var m uint64
	first := true
	for _, name := range sortedKeys(perImage) {
		n, ok := MaxStaging(base, perImage[name])
		if !ok {
			return 0, fmt.Errorf("%s has no %s-staging.N tag: push the staging line for %s first", name, base, base)
		}
		if first || n < m {
			m, first = n, false
		}
	}
	if first {
		return 0, fmt.Errorf("no images to promote: the config lists none")
	}
	return m, nil
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// FirstRevision is N of a release's first rebuild: X.Y.Z-r1.
const FirstRevision = 1

// RevisionN returns N when v is X.Y.Z-rN (N ≥ 1, no leading zero).
func RevisionN(v *semver.Version) (uint64, bool) {
	rest, ok := strings.CutPrefix(v.Prerelease(), "r")
	if !ok || rest == "" || rest[0] < '1' || rest[0] > '9' || strings.Trim(rest, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

// RevisionTag is base-rN, the tag of the Nth rebuild of release base (X.Y.Z).
func RevisionTag(base string, n uint64) string {
	return base + "-r" + strconv.FormatUint(n, 10)
}

// ParseRevision splits a tag X.Y.Z-rN into X.Y.Z and N. Only the exact form
// is accepted (no leading v, no build metadata), so RevisionTag gives back s.
func ParseRevision(s string) (base *semver.Version, n uint64, ok bool) {
	v, err := semver.StrictNewVersion(s)
	if err != nil || v.Metadata() != "" {
		return nil, 0, false
	}
	if n, ok = RevisionN(v); !ok || v.String() != s {
		return nil, 0, false
	}
	return version.Base(v), n, true
}

// MaxRevision returns the highest N among tags of the form base-rN, and
// false when there is none.
func MaxRevision(base string, existing []string) (uint64, bool) {
	var best uint64
	found := false
	for _, t := range existing {
		b, n, ok := ParseRevision(t)
		if !ok || b.String() != base {
			continue
		}
		if !found || n > best {
			best, found = n, true
		}
	}
	return best, found
}
