package config

import (
	"fmt"
	"strings"
)

// Platforms Hoist builds for: Linux, as the engine runs Linux containers,
// on the architectures Go and Debian's qemu-user-static both know. A
// variant is only written where it tells two ABIs apart (arm/v6, arm/v7).
var knownPlatforms = map[string]bool{
	"linux/amd64":   true,
	"linux/arm64":   true,
	"linux/arm/v7":  true,
	"linux/arm/v6":  true,
	"linux/386":     true,
	"linux/ppc64le": true,
	"linux/s390x":   true,
	"linux/riscv64": true,
}

// ParsePlatform returns p in the form images and the lock use (OS/ARCH or
// OS/ARCH/VARIANT), or an error saying what to write instead. linux/arm64/v8
// is linux/arm64, as the OCI image spec treats it.
func ParsePlatform(p string) (string, error) {
	norm := strings.ToLower(strings.TrimSpace(p))
	switch norm {
	case "linux/arm64/v8", "linux/aarch64":
		norm = "linux/arm64"
	case "linux/x86_64", "linux/x86-64":
		norm = "linux/amd64"
	case "linux/arm":
		norm = "linux/arm/v7"
	}
	if knownPlatforms[norm] {
		return norm, nil
	}
	return "", fmt.Errorf("%q is not a platform Hoist builds for: use OS/ARCH[/VARIANT], one of %s", p, strings.Join(PlatformNames(), ", "))
}

// PlatformNames lists the platforms ParsePlatform accepts, in a fixed order.
func PlatformNames() []string {
	return []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"}
}

// PlatformsOf is what img is built for: its own platforms, else the top
// level's, in the order written. Empty means the engine's own platform
// only, built and recorded as before platforms existed.
func (c *Config) PlatformsOf(img Image) []string {
	if len(img.Platforms) > 0 {
		return img.Platforms
	}
	return c.Platforms
}

// checkPlatforms normalises ps in place and refuses an unknown or repeated
// platform at its line (or at line when the list's lines are unknown).
func (c *Config) checkPlatforms(what string, ps []string, lines []int, line int) error {
	at := func(i int) int {
		if i < len(lines) && lines[i] > 0 {
			return lines[i]
		}
		return line
	}
	if ps != nil && len(ps) == 0 {
		return &Error{File: c.File, Line: line, Msg: what + " is empty: list at least one, e.g. [linux/amd64, linux/arm64], or leave the key out for the engine's own platform"}
	}
	seen := map[string]int{}
	for i, p := range ps {
		norm, err := ParsePlatform(p)
		if err != nil {
			return &Error{File: c.File, Line: at(i), Msg: fmt.Sprintf("%s: %v", what, err)}
		}
		if j, ok := seen[norm]; ok {
			return &Error{File: c.File, Line: at(i), Msg: fmt.Sprintf("%s: %s is listed twice (first at line %d): list each platform once", what, norm, at(j))}
		}
		seen[norm] = i
		ps[i] = norm
	}
	return nil
}
