package plan

import (
	"testing"

	"github.com/hoistci/hoist/pkg/engine"
)

func TestBaseFor(t *testing.T) {
	goOnly := Base{Ref: "p/go:1", Hash: "sha256:go", Go: map[string]string{"/bin/x": "/src/x"}}
	files := Base{Ref: "p/bb:1", Hash: "sha256:host", Rootfs: engine.Rootfs{Files: map[string]string{"/bin/busybox": "/bin/busybox"}},
		Platforms: map[string]PlatformBase{
			"linux/arm64": {Rootfs: engine.Rootfs{Files: map[string]string{"/bin/busybox": "/arm64/busybox"}, Platform: "linux/arm64"}, Hash: "sha256:arm"},
		}}
	tests := []struct {
		name           string
		base           Base
		platform, host string
		ok             bool
		ref, hash      string
		file, platf    string
	}{
		{name: "go base, the engine's platform", base: goOnly, platform: "linux/amd64", host: "linux/amd64", ok: true, ref: "p/go:1", hash: "sha256:go"},
		{name: "go base, another platform", base: goOnly, platform: "linux/arm64", host: "linux/amd64", ok: true, ref: "p/go:1-linux-arm64", hash: PlatformInputs("sha256:go", "linux/arm64"), platf: "linux/arm64"},
		{name: "host files, the engine's platform", base: files, platform: "linux/amd64", host: "linux/amd64", ok: true, ref: "p/bb:1", hash: "sha256:host", file: "/bin/busybox"},
		{name: "host files, a platform given", base: files, platform: "linux/arm64", host: "linux/amd64", ok: true, ref: "p/bb:1-linux-arm64", hash: "sha256:arm", file: "/arm64/busybox", platf: "linux/arm64"},
		{name: "host files, a platform not given", base: files, platform: "linux/s390x", host: "linux/amd64", ok: false},
		{name: "host files, an arm64 engine uses its entry", base: files, platform: "linux/arm64", host: "linux/arm64", ok: true, ref: "p/bb:1", hash: "sha256:arm", file: "/arm64/busybox", platf: "linux/arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.base.For(tt.platform, tt.host)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if got.Ref != tt.ref || got.Hash != tt.hash || got.Rootfs.Platform != tt.platf || got.Platforms != nil {
				t.Errorf("got ref %s hash %s platform %q platforms %v; want %s %s %q and none", got.Ref, got.Hash, got.Rootfs.Platform, got.Platforms, tt.ref, tt.hash, tt.platf)
			}
			if tt.file != "" && got.Rootfs.Files["/bin/busybox"] != tt.file {
				t.Errorf("busybox from %s, want %s", got.Rootfs.Files["/bin/busybox"], tt.file)
			}
			if len(got.Go) != len(tt.base.Go) {
				t.Errorf("Go packages %v, want the base's %v", got.Go, tt.base.Go)
			}
		})
	}
}
