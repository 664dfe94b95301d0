package engine

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
)

// IDs resolves many references to image IDs with one list call (one
// inspect each would cost a round trip per image). References the engine
// does not know are absent from the result.
func (e *Engine) IDs(ctx context.Context, refs ...string) (map[string]string, error) {
	out := map[string]string{}
	if len(refs) == 0 {
		return out, nil
	}
	f := filters.NewArgs()
	want := map[string]bool{}
	for _, r := range refs {
		f.Add("reference", r)
		want[r] = true
	}
	list, err := e.API.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	for _, s := range list {
		for _, t := range s.RepoTags {
			if want[t] {
				out[t] = s.ID
			}
		}
	}
	return out, nil
}
