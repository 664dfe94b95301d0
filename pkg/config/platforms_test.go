package config

import (
	"slices"
	"strings"
	"testing"
)

func TestPlatforms(t *testing.T) {
	const head = "project: d\n"
	tests := []struct {
		name string
		yaml string
		want map[string][]string // image name -> PlatformsOf
		err  string              // substring of the one-line error
	}{
		{name: "default is the engine's", yaml: head + "images:\n  - {name: a, dockerfile: Dockerfile}\n", want: map[string][]string{"a": nil}},
		{name: "top level", yaml: head + "platforms: [linux/amd64, linux/arm64]\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: map[string][]string{"a": {"linux/amd64", "linux/arm64"}}},
		{name: "image overrides top level", yaml: head + "platforms: [linux/amd64, linux/arm64]\nimages:\n  - {name: a, dockerfile: Dockerfile, platforms: [linux/arm/v7]}\n  - {name: b, dockerfile: Dockerfile}\n", want: map[string][]string{"a": {"linux/arm/v7"}, "b": {"linux/amd64", "linux/arm64"}}},
		{name: "normalised", yaml: head + "platforms: [LINUX/ARM64/V8, linux/arm]\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: map[string][]string{"a": {"linux/arm64", "linux/arm/v7"}}},
		{name: "matrix entries inherit", yaml: head + "images:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    platforms: [linux/arm64]\n    matrix: {axes: {x: [1, 2]}}\n", want: map[string][]string{"a-{{.x}}": {"linux/arm64"}}},
		{name: "unknown top level", yaml: head + "platforms:\n  - linux/amd64\n  - windows/amd64\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", err: `hoist.yaml:4: platforms: "windows/amd64" is not a platform Hoist builds for: use OS/ARCH[/VARIANT], one of linux/amd64, linux/arm64`},
		{name: "unknown in image", yaml: head + "images:\n  - name: a\n    dockerfile: Dockerfile\n    platforms:\n      - linux/arm64\n      - linux/mips\n", err: `hoist.yaml:7: image "a": platforms: "linux/mips" is not a platform`},
		{name: "duplicate", yaml: head + "platforms:\n  - linux/arm64\n  - linux/amd64\n  - linux/arm64/v8\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", err: "hoist.yaml:5: platforms: linux/arm64 is listed twice (first at line 3): list each platform once"},
		{name: "duplicate in image flow list", yaml: head + "images:\n  - {name: a, dockerfile: Dockerfile, platforms: [linux/amd64, linux/amd64]}\n", err: `hoist.yaml:3: image "a": platforms: linux/amd64 is listed twice`},
		{name: "empty list", yaml: head + "platforms: []\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", err: "hoist.yaml:2: platforms is empty"},
		{name: "not a list", yaml: head + "platforms: linux/amd64\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", err: "hoist.yaml:2: wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("hoist.yaml", repo(t), []byte(tt.yaml))
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error; want %q", tt.err)
				}
				if msg := err.Error(); !strings.Contains(msg, tt.err) || strings.Contains(msg, "\n") {
					t.Fatalf("error %q\nwant one line containing %q", msg, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, img := range c.Images {
				if got := c.PlatformsOf(img); !slices.Equal(got, tt.want[img.Name]) {
					t.Errorf("PlatformsOf(%s) = %q, want %q", img.Name, got, tt.want[img.Name])
				}
			}
		})
	}
}

func TestParsePlatformEveryName(t *testing.T) {
	for _, p := range PlatformNames() {
		if got, err := ParsePlatform(p); err != nil || got != p {
			t.Errorf("ParsePlatform(%q) = %q, %v; want it unchanged", p, got, err)
		}
	}
}
