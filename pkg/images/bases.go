package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/plan"
)

// baseVariants says where the engine keeps each local base's image of a
// platform other than its own: base ref -> platform -> reference.
type baseVariants map[string]map[string]string

// platformsOf lists the platforms the solves build for, sorted.
func platformsOf(us []unit) []string {
	var out []string
	for _, u := range us {
		if u.platform != "" && !slices.Contains(out, u.platform) {
			out = append(out, u.platform)
		}
	}
	slices.Sort(out)
	return out
}

// platformBases tells whether a base gives files per platform.
func platformBases(bases []plan.Base) bool {
	for _, b := range bases {
		if len(b.Platforms) > 0 {
			return true
		}
	}
	return false
}

// makeBases makes base for the engine's platform host, and for each of
// platforms it can be made for (plan.Base.For), recording the latter in v.
// A base is made for every platform some image is built for, not only the
// ones FROM it: it is made once and then kept while its files are unchanged.
// A platform the base cannot be made for is left out; an image of that
// platform FROM it is refused when built (foreignSources).
func makeBases(ctx context.Context, e Engine, rec *builtRecord, base plan.Base, buildDir, host string, platforms []string, v baseVariants, used map[string]bool, o Options, pr *printer) (baseVariants, error) {
	own, _ := base.For(host, host)
	own, err := compileGo(ctx, own, buildDir, o)
	if err != nil {
		return v, err
	}
	used[own.Hash] = true
	if err := makeBase(ctx, e, rec, own, o.Rebuild, pr); err != nil {
		return v, err
	}
	for _, p := range platforms {
		if p == host {
			continue
		}
		pb, ok := base.For(p, host)
		if !ok {
			continue
		}
		po := o
		po.GoArch, po.GoEnv = goTarget(p, o.GoEnv)
		if pb, err = compileGo(ctx, pb, buildDir, po); err != nil {
			return v, err
		}
		used[pb.Hash] = true
		if err := makeBase(ctx, e, rec, pb, o.Rebuild, pr); err != nil {
			return v, err
		}
		if v == nil {
			v = baseVariants{}
		}
		if v[base.Ref] == nil {
			v[base.Ref] = map[string]string{}
		}
		v[base.Ref][p] = pb.Ref
	}
	return v, nil
}

// goTarget is the GOARCH, and the go command's environment, that compile
// for platform (linux/arm/v7 is GOARCH=arm with GOARM=7).
func goTarget(platform string, env []string) (string, []string) {
	parts := strings.Split(platform, "/")
	arch := parts[1]
	if arch == "arm" && len(parts) == 3 {
		env = append(slices.Clone(env), "GOARM="+strings.TrimPrefix(parts[2], "v"))
	}
	return arch, env
}

// use points the local bases img's Dockerfile builds FROM at their images
// for platform, as named contexts (a FROM of the base's reference then
// reads that platform's image), and folds those images' IDs into sum, so
// a platform's image is rebuilt when its base changed. Contexts hoist.yaml
// names win.
func (v baseVariants) use(ctx context.Context, e Engine, img plan.Image, platform, sum string) (plan.Image, string, error) {
	df, err := os.ReadFile(img.Dockerfile)
	if err != nil {
		return img, sum, fmt.Errorf("reading Dockerfile: %w", err)
	}
	uses, err := plan.ReadDockerfile(df, img.Args)
	if err != nil {
		return img, sum, fmt.Errorf("reading %s: %w", img.Dockerfile, err)
	}
	found := map[string]string{}
	for _, u := range uses.Sources {
		if ref, ok := v[u.Name][platform]; ok {
			if _, named := img.Contexts[u.Name]; !named {
				found[u.Name] = ref
			}
		}
	}
	if len(found) == 0 {
		return img, sum, nil
	}
	ctxs := maps.Clone(img.Contexts)
	if ctxs == nil {
		ctxs = map[string]string{}
	}
	h := sha256.New()
	fmt.Fprintf(h, "hoist-platform-bases v1\n%s\n", sum)
	for _, name := range slices.Sorted(maps.Keys(found)) {
		ref := found[name]
		cur, err := e.Inspect(ctx, ref)
		if err != nil {
			return img, sum, fmt.Errorf("reading base %s for %s: %w", ref, platform, err)
		}
		fmt.Fprintf(h, "base %s %s\n", ref, cur.ID)
		ctxs[name] = config.ImageContextPrefix + ref
	}
	img.Contexts = ctxs
	return img, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
