package plan

import (
	"slices"
	"strings"
)

// Primary is the platform whose image an image built for several keeps at
// its own Ref: the engine's (host) when listed, since that is what runs
// natively and what a cluster node on this machine loads, else the first.
func (img Image) Primary(host string) string {
	if len(img.Platforms) == 0 || slices.Contains(img.Platforms, host) {
		return host
	}
	return img.Platforms[0]
}

// PlatformRef is where the engine keeps img's image for platform, given
// the engine's own platform host: Ref for the primary platform, and Ref's
// tag with the platform appended for the others, e.g.
// demo/app:1.2.3-linux-arm64 (docker image ls shows which is which).
func (img Image) PlatformRef(platform, host string) string {
	if platform == img.Primary(host) {
		return img.Ref
	}
	return img.Ref + "-" + PlatformSuffix(platform)
}

// PlatformSuffix is platform written as a tag part: linux/arm/v7 becomes
// linux-arm-v7.
func PlatformSuffix(platform string) string {
	return strings.ReplaceAll(platform, "/", "-")
}
