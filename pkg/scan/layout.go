package scan

import (
	"context"
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/dockersave"
	"github.com/hoistci/hoist/pkg/lock"
)

// saveLayout exports images from the engine with ONE `docker save` into an
// OCI image layout at dir, each image's manifest annotated with its name, so
// Trivy reads each one as `--input DIR@NAME`. A layer shared by several
// images (the matrix's base) is exported and stored once; scanning with
// `--image-src docker` instead makes the engine export every image whole,
// shared layers again each time, and Trivy copy each export to a temporary
// file first.
func saveLayout(ctx context.Context, e Engine, images []lock.Image, dir string) error {
	if strings.Contains(dir, "@") {
		return fmt.Errorf("the image layout folder %s contains '@', which Trivy reads as a separator: use a build folder without it", dir)
	}
	refs := make([]string, len(images))
	want := make([]dockersave.LayoutImage, len(images))
	for i, img := range images {
		refs[i] = img.Ref
		want[i] = dockersave.LayoutImage{Name: img.Name, Ref: img.Ref, ConfigDigest: img.ConfigDigest}
	}
	rc, err := e.Save(ctx, refs...)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = dockersave.WriteLayout(rc, want, dir)
	return err
}
