package targets

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Plan prints the GitHub matrix of CI shards for this commit's images.
//
// The images are split over shards.count shards (hoist.yaml) balanced by
// the build times the last lock file recorded; with no more images than
// shards.threshold there is one shard. The matrix is printed as JSON and,
// when $GITHUB_OUTPUT is set, appended there as matrix=…, with
// sharded=true|false and shards=K: a workflow runs the shard target per
// matrix entry (HOIST_SHARD and HOIST_IMAGES from it), then join.
func Plan(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	sp, err := r.PlanShards(ctx)
	if err != nil {
		return err
	}
	for _, p := range sp.Parts {
		fmt.Fprintf(os.Stderr, "plan: shard %s: %d image(s), %.1fs of builds last time: %s\n", p.Spec(), len(p.Images), float64(p.Millis)/1000, strings.Join(p.Images, ","))
	}
	why := fmt.Sprintf("%d image(s), threshold %d", sp.Images, r.Cfg.Shards.Threshold)
	fmt.Fprintf(os.Stderr, "plan: %d shard(s) (%s)\n", len(sp.Parts), why)
	fmt.Fprintln(r.Out, string(sp.Matrix))
	if r.Set.Output == "" {
		return nil
	}
	f, err := os.OpenFile(r.Set.Output, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("writing the workflow outputs %s: %w", r.Set.Output, err)
	}
	_, err = fmt.Fprintf(f, "matrix=%s\nsharded=%s\nshards=%d\n", sp.Matrix, strconv.FormatBool(sp.Sharded), len(sp.Parts))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the workflow outputs %s: %w", r.Set.Output, err)
	}
	return nil
}

// Shard runs CI shard HOIST_SHARD=I/K of the line for HOIST_IMAGES, pushing by digest.
//
// Its images are built, tested, scanned and gated, then pushed by digest
// only: no tag names them until the join. Its lock is kept as
// build/hoist/shards/shard-I-of-K.json, the fragment the workflow uploads
// for the join. On the staging line the number must already be reserved
// at this commit (the plan job runs reserve), so every shard builds the
// same version.
func Shard(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Shard(ctx)
}

// Join checks the CI shards' fragments are one release, then writes every tag.
//
// The fragments must be one per shard of one plan, hold every image of
// hoist.yaml exactly once, all built at this commit and version, tested,
// scanned and pushed by digest; the registry must serve each digest as
// tested. Anything less (a failed, killed or missing shard, a truncated or
// duplicated fragment, two shards claiming one image, another commit)
// refuses the join in one line and writes no tag. Then the line goes on
// as on one machine: record, pins, GitHub release.
func Join(ctx context.Context) error {
	r, err := newRun(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Join(ctx)
}
