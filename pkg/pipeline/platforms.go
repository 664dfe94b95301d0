package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/hoistci/hoist/pkg/ctest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// platformCases are the test cases of an image with platforms, one per
// platform, each on the very image the lock recorded for it.
func platformCases(ctx context.Context, e *engine.Engine, pi plan.Image, li lock.Image) ([]ctest.Case, error) {
	var cases []ctest.Case
	for _, p := range li.Platforms {
		if err := sameInEngine(ctx, e, p); err != nil {
			return nil, err
		}
		cases = append(cases, ctest.Case{
			Name: pi.Name, Ref: p.Ref, ImageID: p.ImageID, Platform: p.Platform,
			Command: pi.Test.Command, Network: pi.Test.Network, Timeout: pi.Test.Timeout, Env: pi.Test.Env,
		})
	}
	return cases, nil
}

// sameInEngine checks that the engine still holds the platform's image the
// lock recorded.
func sameInEngine(ctx context.Context, e *engine.Engine, p lock.Platform) error {
	cur, err := e.Inspect(ctx, p.Ref)
	if errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("image %s (%s) is in the lock file but not in the engine: run the Images target", p.Ref, p.Platform)
	}
	if err != nil {
		return err
	}
	if cur.ID != p.ImageID {
		return fmt.Errorf("image %s (%s) changed since the Images target recorded it (%s, now %s): run the Images target", p.Ref, p.Platform, short(p.ImageID), short(cur.ID))
	}
	return nil
}
