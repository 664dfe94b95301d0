// Package bump computes the next version of a project from its current one.
//
// It works on Masterminds/semver values and never uses their Inc* methods,
// which wrap silently at MaxUint64 in v3.4.0: every increment here is
// checked and refused with ErrOverflow instead.
//
// Steps and what they do (N is a prerelease counter, starting at 1):
//
//	major  1.2.3 → 2.0.0    2.0.0-rc.1 → 2.0.0 (finishes the prerelease of a major)
//	minor  1.2.3 → 1.3.0    1.3.0-rc.1 → 1.3.0 (finishes the prerelease of a minor)
//	patch  1.2.3 → 1.2.4    1.2.4-rc.1 → 1.2.4 (finishes any prerelease)
//	rc     1.2.3 → 1.2.4-rc.1   1.2.4-rc.1 → 1.2.4-rc.2   1.2.4-beta.3 → 1.2.4-rc.1
//	beta   like rc; alpha like rc
//	pre    1.2.4-rc.2 → 1.2.4 (releases the prerelease; refused on a release)
//	X.Y.Z  an explicit version, accepted only when it is greater
//
// A channel step never goes backwards: beta on 1.2.4-rc.1 is refused
// (bump patch, minor or major first). The counter keeps the style it has:
// rc.1 → rc.2, rc1 → rc2, and a bare rc becomes rc.1. Build metadata (+…)
// is dropped by every step.
package bump

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/version"
)

// Step is one kind of bump.
type Step string

// The steps Next understands besides an explicit version.
const (
	Major Step = "major"
	Minor Step = "minor"
	Patch Step = "patch"
	RC    Step = "rc"
	Beta  Step = "beta"
	Alpha Step = "alpha"
	Pre   Step = "pre"
)

// Steps lists the named steps, for help texts.
var Steps = []Step{Major, Minor, Patch, RC, Beta, Alpha, Pre}

// Outcomes callers can branch on.
var (
	ErrOverflow  = errors.New("version number would overflow")
	ErrDowngrade = errors.New("the new version would not be greater than the current one")
	ErrStep      = errors.New("unknown bump step")
	ErrInvalid   = version.ErrInvalid
)

// Parse reads a version the way VERSION holds it (version.Parse) and
// reports whether it had a leading v.
func Parse(s string) (v *semver.Version, leadingV bool, err error) {
	pv, err := version.Parse(s)
	if err != nil {
		return nil, false, err
	}
	return pv.SemVer, pv.V, nil
}

// Format writes v in the given style.
func Format(v *semver.Version, leadingV bool) string { return version.Format(v, leadingV) }

// Next returns the version after cur for step, which is one of Steps or an
// explicit version (with or without a leading v). The result is always
// greater than cur; anything else is refused with the reason.
func Next(cur *semver.Version, step string) (*semver.Version, error) {
	next, err := next(cur, step)
	if err != nil {
		return nil, fmt.Errorf("bumping %s by %q: %w", cur, step, err)
	}
	if !next.GreaterThan(cur) {
		return nil, fmt.Errorf("bumping %s by %q gives %s: %w", cur, step, next, ErrDowngrade)
	}
	return next, nil
}

func next(cur *semver.Version, step string) (*semver.Version, error) {
	maj, min, pat, pre := cur.Major(), cur.Minor(), cur.Patch(), cur.Prerelease()
	switch Step(step) {
	case Major:
		if pre != "" && min == 0 && pat == 0 {
			return semver.New(maj, 0, 0, "", ""), nil
		}
		m, err := inc(maj, "major")
		return semver.New(m, 0, 0, "", ""), err
	case Minor:
		if pre != "" && pat == 0 {
			return semver.New(maj, min, 0, "", ""), nil
		}
		m, err := inc(min, "minor")
		return semver.New(maj, m, 0, "", ""), err
	case Patch:
		if pre != "" {
			return semver.New(maj, min, pat, "", ""), nil
		}
		p, err := inc(pat, "patch")
		return semver.New(maj, min, p, "", ""), err
	case Pre:
		if pre == "" {
			return nil, fmt.Errorf("%s is not a prerelease: use major, minor or patch", cur)
		}
		return semver.New(maj, min, pat, "", ""), nil
	case RC, Beta, Alpha:
		return channel(cur, step)
	}
	if v, _, err := Parse(step); err == nil {
		return v, nil
	}
	return nil, fmt.Errorf("%w %q: use one of %s, or an explicit version such as 1.4.0", ErrStep, step, joinSteps())
}

// glued matches a counter written without a dot, as in rc1.
var glued = regexp.MustCompile(`^([A-Za-z-]*[A-Za-z-])([0-9]+)$`)

// channel moves cur onto the prerelease channel ch, or one step along it.
func channel(cur *semver.Version, ch string) (*semver.Version, error) {
	maj, min, pat, pre := cur.Major(), cur.Minor(), cur.Patch(), cur.Prerelease()
	if pre == "" {
		// A prerelease of the version just released would sort below it, so
		// the channel opens on the next patch.
		p, err := inc(pat, "patch")
		if err != nil {
			return nil, err
		}
		return semver.New(maj, min, p, ch+".1", ""), nil
	}
	parts := strings.Split(pre, ".")
	var np string
	switch {
	case parts[0] == ch && len(parts) == 1:
		np = ch + ".1"
	case parts[0] == ch && isNum(parts[len(parts)-1]):
		n, err := incPre(parts[len(parts)-1])
		if err != nil {
			return nil, err
		}
		parts[len(parts)-1] = n
		np = strings.Join(parts, ".")
	case parts[0] == ch:
		np = pre + ".1"
	default:
		if m := glued.FindStringSubmatch(parts[0]); m != nil && m[1] == ch && len(parts) == 1 {
			n, err := incPre(m[2])
			if err != nil {
				return nil, err
			}
			np = ch + n
			v := semver.New(maj, min, pat, np, "")
			if !v.GreaterThan(cur) {
				// rc9 → rc10 sorts below rc9: semver compares these as text.
				return nil, fmt.Errorf("%s would sort below %s (semver compares %s and %s as text): number the prerelease with a dot first, e.g. set VERSION to %s: %w", v, cur, np, m[0], semver.New(maj, min, pat, ch+"."+m[2], ""), ErrDowngrade)
			}
			return v, nil
		}
		np = ch + ".1"
	}
	v := semver.New(maj, min, pat, np, "")
	if !v.GreaterThan(cur) {
		return nil, fmt.Errorf("%s would go back from %s to %s: bump patch, minor or major to open a new %s line: %w", ch, cur, v, ch, ErrDowngrade)
	}
	return v, nil
}

func isNum(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func inc(n uint64, what string) (uint64, error) {
	if n == math.MaxUint64 {
		return 0, fmt.Errorf("%s %d is the largest number semver tools can hold: %w", what, n, ErrOverflow)
	}
	return n + 1, nil
}

// incPre increments a numeric prerelease identifier. Identifiers beyond
// uint64 are refused: semver libraries then compare them as text.
func incPre(s string) (string, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", fmt.Errorf("prerelease number %s is beyond what semver tools compare as a number: %w", s, ErrOverflow)
	}
	m, err := inc(n, "prerelease number")
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(m, 10), nil
}

func joinSteps() string {
	s := make([]string, len(Steps))
	for i, st := range Steps {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}
