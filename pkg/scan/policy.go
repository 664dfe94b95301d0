package scan

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/config"
)

// Policy decides which findings fail the gate.
type Policy struct {
	// Severity lists the severities that fail the gate, e.g. HIGH, CRITICAL.
	Severity []string
	// IgnoreUnfixed accepts findings that have no fixed version yet.
	IgnoreUnfixed bool
	// Ignore accepts named findings until they expire.
	Ignore []Ignore
	// Scanners are Trivy's scanners, e.g. vuln, secret.
	Scanners []string
}

// Ignore accepts one finding (by ID, optionally only in one package) for a
// reason, until the end of its expiry day (UTC). An expired entry stops
// ignoring, and the scan says so.
type Ignore struct {
	ID      string
	Package string // empty: any package
	Reason  string
	Expires time.Time // required: an acceptance that never ends is never reviewed
	Where   string    // e.g. hoist.yaml:31, for messages
}

// PolicyFrom turns the config's scan section into a Policy.
func PolicyFrom(c *config.Config) (Policy, error) {
	p := Policy{
		Severity:      append([]string(nil), c.Scan.Severity...),
		IgnoreUnfixed: c.Scan.IgnoreUnfixed,
		Scanners:      append([]string(nil), c.Scan.Scanners...),
	}
	for _, ig := range c.Scan.Ignore {
		where := fmt.Sprintf("%s:%d", c.File, ig.Line)
		e := Ignore{ID: ig.ID, Package: ig.Package, Reason: ig.Reason, Where: where}
		if ig.Expires != "" {
			t, err := time.Parse("2006-01-02", ig.Expires)
			if err != nil {
				return Policy{}, fmt.Errorf("%s: scan ignore %s: expires %q is not a date: write YYYY-MM-DD", where, ig.ID, ig.Expires)
			}
			e.Expires = t
		}
		p.Ignore = append(p.Ignore, e)
	}
	return p, p.Validate()
}

// knownScanners are the Trivy scanners Hoist gates on. Others (misconfig,
// license) are refused rather than run with their findings unread.
var knownScanners = []string{"vuln", "secret"}

// Validate checks the policy, naming the place of a bad entry.
func (p Policy) Validate() error {
	if len(p.Severity) == 0 {
		return fmt.Errorf("scan policy: no severity fails the gate: list at least one, e.g. severity: [HIGH, CRITICAL]")
	}
	for _, s := range p.Severity {
		if _, ok := severityRank[s]; !ok {
			return fmt.Errorf("scan policy: severity %q: use UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL", s)
		}
	}
	if len(p.Scanners) == 0 {
		return fmt.Errorf("scan policy: no scanners: use e.g. scanners: [vuln, secret]")
	}
	for _, s := range p.Scanners {
		if !slices.Contains(knownScanners, s) {
			return fmt.Errorf("scan policy: scanner %q: use %s", s, strings.Join(knownScanners, ", "))
		}
	}
	for _, ig := range p.Ignore {
		if ig.ID == "" || strings.TrimSpace(ig.Reason) == "" {
			return fmt.Errorf("%s: a scan ignore entry needs an id and a reason", ig.Where)
		}
		if ig.Expires.IsZero() {
			return fmt.Errorf("%s: scan ignore %s has no expiry: add expires: YYYY-MM-DD, the day it is reviewed again", ig.Where, ig.ID)
		}
	}
	return nil
}

// expired reports whether the entry no longer applies at now: it holds
// through its expiry day.
func (ig Ignore) expired(now time.Time) bool {
	return !ig.Expires.IsZero() && !now.UTC().Before(ig.Expires.AddDate(0, 0, 1))
}

func (ig Ignore) matches(f Finding) bool {
	return strings.EqualFold(ig.ID, f.ID) && (ig.Package == "" || ig.Package == f.Package)
}

func (ig Ignore) String() string {
	s := ig.ID
	if ig.Package != "" {
		s += " in " + ig.Package
	}
	return s
}

// Apply sets each finding's verdict and returns notices about ignore
// entries that expired while still matching something.
func (p Policy) Apply(image string, fs []Finding, now time.Time) (notices []string, used map[int]bool) {
	used = map[int]bool{}
	for i := range fs {
		f := &fs[i]
		if !slices.Contains(p.Severity, f.Severity) {
			f.Verdict = Below
			continue
		}
		f.Verdict = Blocking
		var expired []Ignore
		for j, ig := range p.Ignore {
			if !ig.matches(*f) {
				continue
			}
			used[j] = true
			if ig.expired(now) {
				expired = append(expired, ig)
				continue
			}
			f.Verdict = Ignored
			f.Reason = ig.Reason
			if !ig.Expires.IsZero() {
				f.Reason += " (until " + ig.Expires.Format("2006-01-02") + ")"
			}
			break
		}
		if f.Verdict == Ignored {
			continue
		}
		if p.IgnoreUnfixed && f.Kind == KindVulnerability && f.Fixed == "" {
			f.Verdict = Ignored
			f.Reason = "no fixed version yet (ignore_unfixed)"
			continue
		}
		for _, ig := range expired {
			f.Reason = fmt.Sprintf("ignore entry %s expired on %s", ig.Where, ig.Expires.Format("2006-01-02"))
			notices = append(notices, fmt.Sprintf("%s: scan ignore %s expired on %s (reason was %q): it no longer applies, so %s %s in %s blocks again: fix it, or renew the entry with a new date and reason",
				ig.Where, ig, ig.Expires.Format("2006-01-02"), ig.Reason, f.ID, f.Package, image))
		}
	}
	sortFindings(fs)
	return notices, used
}

// sortFindings orders findings worst first, then by package and ID, so
// reports and the lock file are stable.
func sortFindings(fs []Finding) {
	vr := map[Verdict]int{Blocking: 0, Ignored: 1, Below: 2}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if vr[a.Verdict] != vr[b.Verdict] {
			return vr[a.Verdict] < vr[b.Verdict]
		}
		if severityRank[a.Severity] != severityRank[b.Severity] {
			return severityRank[a.Severity] > severityRank[b.Severity]
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Target < b.Target
	})
}

// judge applies the policy to every scanned image and adds notices about
// ignore entries: expired ones, and (when every image was scanned) unused ones.
func judge(res *Result, p Policy, now time.Time, filtered bool) {
	used := map[int]bool{}
	for i := range res.Images {
		r := &res.Images[i]
		if r.Err != nil {
			continue
		}
		notes, u := p.Apply(r.Name, r.Findings, now)
		res.Notices = append(res.Notices, notes...)
		for k := range u {
			used[k] = true
		}
	}
	for j, ig := range p.Ignore {
		switch {
		case ig.expired(now) && !used[j]:
			res.Notices = append(res.Notices, fmt.Sprintf("%s: scan ignore %s expired on %s and matches nothing: remove it", ig.Where, ig, ig.Expires.Format("2006-01-02")))
		case !used[j] && !filtered:
			res.Notices = append(res.Notices, fmt.Sprintf("%s: scan ignore %s matches nothing in any image: remove it once it is no longer needed", ig.Where, ig))
		}
	}
}

func ignoredReason(f Finding) string {
	if f.Verdict == Ignored {
		return f.Reason
	}
	return ""
}

// verdict turns the results into the run's error: every image that could
// not be scanned, and every blocking finding, one line each.
func verdict(res *Result) error {
	var failed, breached []string
	for _, r := range res.Images {
		if r.Err != nil {
			failed = append(failed, "  "+r.Err.Error())
			continue
		}
		for _, f := range r.Findings {
			if f.Verdict == Blocking {
				breached = append(breached, "  "+blockLine(r.Name, f))
			}
		}
	}
	var errs []error
	if len(failed) > 0 {
		errs = append(errs, fmt.Errorf("%w (%d): an unscanned image never passes:\n%s", ErrNotScanned, len(failed), strings.Join(failed, "\n")))
	}
	if len(breached) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d blocking finding(s); fix them, or accept each with a reason and an expiry under scan.ignore in hoist.yaml:\n%s", ErrBreached, len(breached), strings.Join(breached, "\n")))
	}
	return errors.Join(errs...)
}

// blockLine is one blocking finding: image, package, installed, fixed, ID.
func blockLine(image string, f Finding) string {
	if f.Kind == KindSecret {
		return fmt.Sprintf("%s: secret %s (%s) in %s line %d [%s]", image, f.ID, f.Title, f.Package, f.Line, f.Severity)
	}
	fixed := "no fix yet"
	if f.Fixed != "" {
		fixed = "fixed in " + f.Fixed
	}
	s := fmt.Sprintf("%s: %s %s (%s) %s [%s]", image, f.Package, f.Installed, fixed, f.ID, f.Severity)
	if f.Reason != "" {
		s += ": " + f.Reason
	}
	return s
}
