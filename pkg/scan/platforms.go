package scan

import (
	"strings"

	"github.com/hoistci/hoist/pkg/lock"
)

// owner says whose platform a scanned image is (both empty for an image
// without platforms).
type owner struct{ image, platform string }

// expandPlatforms replaces each image with platforms by one image per
// platform, named IMAGE-OS-ARCH[-VARIANT] (as its build and test logs are),
// and says whose each is.
func expandPlatforms(images []lock.Image) ([]lock.Image, []owner) {
	var out []lock.Image
	var owners []owner
	for _, img := range images {
		if len(img.Platforms) == 0 {
			out = append(out, img)
			owners = append(owners, owner{})
			continue
		}
		for _, p := range img.Platforms {
			out = append(out, lock.Image{
				Name:         img.Name + "-" + strings.ReplaceAll(p.Platform, "/", "-"),
				Ref:          p.Ref,
				ImageID:      p.ImageID,
				ConfigDigest: p.ConfigDigest,
				DiffIDs:      p.DiffIDs,
			})
			owners = append(owners, owner{image: img.Name, platform: p.Platform})
		}
	}
	return out, owners
}
