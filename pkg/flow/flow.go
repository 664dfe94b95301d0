// Package flow runs a release as one ordered list of named steps, stopping
// at the first failure, and decides which line a CI run is on from the git
// ref it was started for.
//
// The steps themselves (Images, Test, Scan, DigestGate, Push, Promote, …)
// live elsewhere; a step here is only a name, the tags it would write (for
// --dry-run) and a function. A step with no function is a stage this build
// of Hoist does not have: it fails the run rather than pretending success.
package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Step is one stage of a release.
type Step struct {
	Name string
	// Writes lists what the step would write outside this machine (git
	// tags, image tags, releases), shown by a dry run.
	Writes []string
	// Run does the work; nil means the stage is not available.
	Run func(ctx context.Context) error
	// Skip, when set, is why this step does nothing in this run (e.g. no
	// GitHub repository configured); it is listed but not run.
	Skip string
}

// ErrMissing is the failure of a step with no function.
var ErrMissing = errors.New("stage not available in this build of Hoist")

// Run runs steps in order, printing one line per step to w, and stops at the
// first failure, whose error names the step. A dry run prints each step and
// what it would write, and runs nothing.
func Run(ctx context.Context, w io.Writer, steps []Step, dryRun bool) error {
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		head := fmt.Sprintf("[%d/%d] %s", i+1, len(steps), s.Name)
		if s.Skip != "" {
			fmt.Fprintf(w, "%s%s skipped: %s\n", prefix(dryRun), head, s.Skip)
			continue
		}
		if dryRun {
			line := head
			if s.Run == nil {
				line += " (not available in this build: a real run stops here)"
			}
			switch len(s.Writes) {
			case 0:
			case 1:
				line += ": would write " + s.Writes[0]
			default:
				line += ": would write"
				for _, wr := range s.Writes {
					line += "\n  " + wr
				}
			}
			fmt.Fprintln(w, "dry run: "+line)
			continue
		}
		fmt.Fprintln(w, head)
		if s.Run == nil {
			return stop(w, steps[i+1:], fmt.Errorf("%s: %w: nothing after it ran", s.Name, ErrMissing))
		}
		start := time.Now()
		if err := s.Run(ctx); err != nil {
			return stop(w, steps[i+1:], fmt.Errorf("%s: %w", s.Name, err))
		}
		fmt.Fprintf(w, "[%d/%d] %s done in %.1fs\n", i+1, len(steps), s.Name, time.Since(start).Seconds())
	}
	return nil
}

func prefix(dryRun bool) string {
	if dryRun {
		return "dry run: "
	}
	return ""
}

func stop(w io.Writer, rest []Step, err error) error {
	if len(rest) > 0 {
		names := make([]string, len(rest))
		for i, s := range rest {
			names[i] = s.Name
		}
		fmt.Fprintf(w, "stopped; not run: %s\n", strings.Join(names, ", "))
	}
	return err
}
