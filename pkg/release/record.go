package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/flow"
	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/lock"
)

// Record is what a staging build pushed, kept on the git remote beside its
// reservation (gitref.PutRecord): the manifest digest of every image, as
// tested. A promotion copies these digests and refuses a registry tag
// that names anything else.
type Record struct {
	Tag    string            `json:"tag"`
	Commit string            `json:"commit"`
	Images map[string]string `json:"images"` // image name -> manifest digest
}

// recordStep writes the record of the staging build (or, on the rebuild
// line, the revision) just pushed.
func (r *Run) recordStep() flow.Step {
	where := ""
	if g := r.recorder(); g != nil {
		where = " on " + g.String()
	}
	return flow.Step{
		Name:   "Record",
		Writes: []string{"the digests pushed, as refs/hoist/builds/" + r.built() + where},
		Run: func(ctx context.Context) error {
			if r.Pushed == nil {
				return errors.New("nothing was pushed to record: run the Push step first")
			}
			tag := r.built()
			rec := Record{Tag: tag, Commit: r.Commit, Images: map[string]string{}}
			for _, img := range r.Pushed.Images {
				rec.Images[img.Name] = img.Digest
			}
			b, err := json.MarshalIndent(rec, "", "  ")
			if err != nil {
				return err
			}
			return r.recorder().PutRecord(ctx, tag, r.Commit, append(b, '\n'))
		},
	}
}

// built is the build this run pushes and records: the revision on the
// rebuild line, else the staging build.
func (r *Run) built() string {
	if r.Decision.Line == flow.Rebuild {
		return r.Revision
	}
	return r.Staging
}

// recorder is the git remote records go to: the reservations' remote when
// it is a git one (the local line's private repository, or the checkout's
// remote), else the checkout's own remote.
func (r *Run) recorder() *gitref.Git {
	if g, ok := r.o.Reserver.(*gitref.Git); ok && g != nil {
		return g
	}
	return r.o.Git
}

// Tested returns the digests staging was tested and pushed with: from its
// record on the git remote, else (a promotion on the machine that pushed
// it) from the lock file. Without either there is no proof, and nothing is
// promoted.
func Tested(ctx context.Context, g *gitref.Git, lockPath, staging string) (map[string]string, error) {
	b, err := g.Record(ctx, staging)
	if err == nil {
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil || rec.Tag != staging || len(rec.Images) == 0 {
			return nil, fmt.Errorf("the record of %s on %s is damaged: run the staging line of its commit again", staging, g)
		}
		return rec.Images, nil
	}
	// No record (or no remote to hold one): the lock of the machine that
	// pushed it is the other proof.
	recErr := err
	l, lerr := lock.Read(lockPath)
	if lerr == nil && l.Version == staging {
		out := map[string]string{}
		for _, img := range l.Images {
			for _, p := range img.Pushed {
				if strings.HasSuffix(p.Ref, ":"+staging) && img.Test != nil && img.Test.Passed && img.Test.ImageID == img.ImageID {
					out[img.Name] = p.Digest
				}
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	why := "there is none"
	if !errors.Is(recErr, gitref.ErrNoRecord) {
		why = recErr.Error()
	}
	return nil, fmt.Errorf("no record of what %s pushed (refs/hoist/builds/%s: %s) and no lock file of it here: a promotion copies only digests proven tested: run the staging line of its commit again, which records them", staging, staging, why)
}
