package gate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// AgainstPlan refuses a lock that does not describe the plan recomputed
// from hoist.yaml, VERSION and HEAD: an image the plan does not have (or
// lacks one it has), another version or commit, an entry whose reference or
// labels are not the plan's. The lock is a file anyone can edit; Push and
// Promote trust it only this far. With only set (HOIST_IMAGES), the lock
// must hold those of the plan's images. Every difference is listed, in one
// line.
func AgainstPlan(p *plan.Plan, l *lock.Lock, lockPath string, only []string) error {
	var bad []string
	if l.Version != p.Version.Plain() {
		bad = append(bad, fmt.Sprintf("it is for version %s, the run is for %s", clip(l.Version), p.Version.Plain()))
	}
	if p.Revision != "" && l.Revision != p.Revision {
		bad = append(bad, fmt.Sprintf("it was built from commit %s, HEAD is %s", clip(l.Revision), p.Revision))
	}
	want := map[string]plan.Image{}
	for _, img := range p.Images {
		want[img.Name] = img
	}
	have := map[string]bool{}
	for _, li := range l.Images {
		have[li.Name] = true
		pi, ok := want[li.Name]
		if !ok {
			bad = append(bad, fmt.Sprintf("image %s is not in the plan", clip(li.Name)))
			continue
		}
		if li.Ref != pi.Ref {
			bad = append(bad, fmt.Sprintf("%s is recorded as %s, the plan builds %s", pi.Name, clip(li.Ref), pi.Ref))
		}
		for _, k := range sortedKeys(pi.Labels) {
			if li.Labels[k] != pi.Labels[k] {
				bad = append(bad, fmt.Sprintf("%s has label %s=%q, the plan says %q", pi.Name, k, clip(li.Labels[k]), pi.Labels[k]))
				break
			}
		}
	}
	for _, img := range p.Images {
		if len(only) > 0 && !slices.Contains(only, img.Name) {
			continue
		}
		if !have[img.Name] {
			bad = append(bad, fmt.Sprintf("image %s of the plan is not in it", img.Name))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	more := ""
	if len(bad) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(bad)-5)
		bad = bad[:5]
	}
	return fmt.Errorf("%s does not describe this run: %s%s: nothing pushed; run the Images and Test targets again", lockPath, strings.Join(bad, "; "), more)
}

// EngineLabels checks that the engine's image at each lock entry's
// reference carries the plan's labels: the image in hand is the one the
// plan describes, not one built elsewhere and tagged over it.
func EngineLabels(ctx context.Context, e Inspector, p *plan.Plan) error {
	var bad []string
	for _, pi := range p.Images {
		got, err := e.Inspect(ctx, pi.Ref)
		if err != nil {
			return fmt.Errorf("digest gate: %s: %w: run the Images target", pi.Name, err)
		}
		for _, k := range sortedKeys(pi.Labels) {
			if got.Labels[k] != pi.Labels[k] {
				bad = append(bad, fmt.Sprintf("%s: engine image %s has label %s=%q, the plan says %q", pi.Name, pi.Ref, k, clip(got.Labels[k]), pi.Labels[k]))
				break
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("digest gate: %s: run the Images and Test targets again", strings.Join(bad, "; "))
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// clip keeps a value read from a file short in a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
