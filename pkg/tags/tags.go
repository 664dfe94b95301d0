// Package tags is Hoist's image tag policy, as plain functions over versions
// and tag lists: which tags a version gets, which of them are immutable, and
// whether a floating tag may move. It talks to no registry.
//
//   - release X.Y.Z: X.Y.Z (immutable), X.Y, X and latest (floating);
//   - prerelease X.Y.Z-rc.1 and the like: only its own tag;
//   - staging X.Y.Z-staging.N: its own tag plus floating staging.
//
// Floating tags move only forward in SemVer order: a floating tag is written
// only when no version in its scope already present in the repository is
// higher than the one being pushed.
package tags

import (
	"fmt"
	"sort"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/version"
)

// Kind is the kind of a version, which decides its tags.
type Kind int

const (
	Release    Kind = iota // X.Y.Z
	Prerelease             // X.Y.Z-anything that is not staging.N
	Staging                // X.Y.Z-staging.N
)

func (k Kind) String() string {
	switch k {
	case Release:
		return "release"
	case Prerelease:
		return "prerelease"
	case Staging:
		return "staging"
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

// Moves reports whether floating tag f may point at version v, given the
// tags already in the repository: it may unless a higher version in f's scope
// is there. Tags that are not versions are ignored.
func Moves(f string, v *semver.Version, existing []string) bool {
	for _, t := range existing {
		w, err := semver.StrictNewVersion(t)
		if err != nil || !inScope(f, v, w) {
			continue
		}
		if w.GreaterThan(v) {
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

// StagingVersion returns X.Y.Z-staging.N for base X.Y.Z.
func StagingVersion(base string, n uint64) string { return version.StagingTag(base, n) }

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
