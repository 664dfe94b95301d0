package images

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/plan"
)

// unit is one solve: an image, or one platform of an image with platforms
// (img.Ref then being that platform's reference).
type unit struct {
	i        int // index in the images being built
	img      plan.Image
	platform string
}

// units lists the solves for todo, and the engine's own platform when an
// image has platforms (empty otherwise: nothing then asks the engine).
func units(ctx context.Context, e Engine, todo []plan.Image) ([]unit, string, error) {
	host := ""
	var us []unit
	for i, img := range todo {
		if len(img.Platforms) == 0 {
			us = append(us, unit{i: i, img: img})
			continue
		}
		if host == "" {
			var err error
			if host, err = e.Platform(ctx); err != nil {
				return nil, "", err
			}
		}
		for _, p := range img.Platforms {
			u := img
			u.Ref = img.PlatformRef(p, host)
			us = append(us, unit{i: i, img: u, platform: p})
		}
	}
	return us, host, nil
}

// gather turns the solves' outcomes into one Result per image: an image
// with platforms is Failed when one platform failed (naming it), Built when
// one was built, and locked as its primary platform's image plus a record
// of every platform, its build time the sum of its platforms' solves (what
// known, the last lock, says when none ran).
func gather(todo []plan.Image, us []unit, done []Result, host string, known map[string]lock.Image) []Result {
	results := make([]Result, len(todo))
	parts := make([][]Result, len(todo))
	for k, u := range us {
		if u.platform == "" {
			results[u.i] = done[k]
			continue
		}
		parts[u.i] = append(parts[u.i], done[k])
	}
	for i, ps := range parts {
		if len(ps) == 0 {
			continue
		}
		img := todo[i]
		r := Result{Image: img, State: Unchanged, Log: ps[0].Log}
		primary := img.Primary(host)
		skipped := true
		var millis int64
		for _, p := range ps {
			r.Duration = max(r.Duration, p.Duration)
			switch {
			case p.State == Failed && r.Err == nil:
				r.State, r.Log = Failed, p.Log
				r.Err = fmt.Errorf("%s: %w", p.Platform, p.Err)
			case p.State == Built && r.State == Unchanged:
				r.State = Built
			}
			skipped = skipped && p.Locked.Skipped
			millis += p.Locked.BuildMillis
			if p.Platform == primary {
				r.Locked = p.Locked
			}
			r.Locked.Platforms = append(r.Locked.Platforms, lock.Platform{
				Platform:     p.Platform,
				Ref:          p.Locked.Ref,
				ImageID:      p.Locked.ImageID,
				ConfigDigest: p.Locked.ConfigDigest,
				DiffIDs:      p.Locked.DiffIDs,
				InputsHash:   p.Locked.InputsHash,
				Skipped:      p.Locked.Skipped,
			})
		}
		r.Locked.Name, r.Locked.Ref, r.Locked.Entry = img.Name, img.Ref, img.Entry
		r.Locked.InputsHash, r.Locked.Skipped, r.Locked.BuildMillis = ps[0].imageSum, skipped, millis
		if k, ok := known[img.Name]; ok && millis == 0 && k.InputsHash == r.Locked.InputsHash {
			r.Locked.BuildMillis = k.BuildMillis
		}
		results[i] = r
	}
	return results
}

// prevPlatform is what the lock knew of platform's image of prev, shaped
// as an image for buildOne.
func prevPlatform(prev lock.Image, platform string) lock.Image {
	p, ok := prev.FindPlatform(platform)
	if !ok {
		return lock.Image{}
	}
	return lock.Image{Name: prev.Name, Ref: p.Ref, ImageID: p.ImageID, ConfigDigest: p.ConfigDigest, DiffIDs: p.DiffIDs}
}

// samePlatforms reports whether a and b hold the same platforms' images,
// in the same order (both none for images without platforms).
func samePlatforms(a, b lock.Image) bool {
	if len(a.Platforms) != len(b.Platforms) {
		return false
	}
	for i := range a.Platforms {
		if a.Platforms[i].Platform != b.Platforms[i].Platform || a.Platforms[i].ImageID != b.Platforms[i].ImageID {
			return false
		}
	}
	return true
}

// keepPlatformResults carries each platform's test and scan over from prev
// to img where that platform's image is the same.
func keepPlatformResults(prev lock.Image, img *lock.Image) {
	for i := range img.Platforms {
		p := &img.Platforms[i]
		if old, ok := prev.FindPlatform(p.Platform); ok && old.ImageID == p.ImageID {
			p.Test, p.Scan = old.Test, old.Scan
		}
	}
}

// samePlatform compares the platform the engine reports for an image with
// the one asked for by OS and architecture: an engine may leave the
// variant out.
func samePlatform(got, want string) bool {
	g, w := strings.Split(got, "/"), strings.Split(want, "/")
	return len(g) >= 2 && len(w) >= 2 && g[0] == w[0] && g[1] == w[1]
}

// foreignSources refuses to build img for platform FROM an image made on
// this machine for another platform (a local base, or on the classic store
// any image that came from no registry): such an image holds one platform
// only, so the containerd store would give the build that image's binaries
// under the wrong platform's name and the classic one would try to pull
// it. A pulled image may hold every platform; BuildKit resolves those.
func foreignSources(ctx context.Context, e Engine, img plan.Image, uses plan.Uses, platform string, localBases map[string]bool) error {
	for _, u := range uses.Sources {
		if _, named := img.Contexts[u.Name]; named {
			continue
		}
		cur, err := e.Inspect(ctx, u.Name)
		if err != nil || cur.Platform == "" || samePlatform(cur.Platform, platform) {
			continue // a build stage, or the right platform
		}
		if !localBases[u.Name] && (cur.Store != engine.StoreClassic || len(cur.RepoDigests) > 0) {
			continue // it may come from a registry, where BuildKit looks for the platform
		}
		return fmt.Errorf("%s line %d: %s %s is a %s image made on this machine, which holds no %s image: build FROM scratch with a binary per platform (COPY app-${TARGETARCH} /app) or FROM an image a registry serves for every platform, or leave %s out of this image's platforms",
			img.Dockerfile, u.Line, u.Source, u.Name, cur.Platform, platform, platform)
	}
	return nil
}
