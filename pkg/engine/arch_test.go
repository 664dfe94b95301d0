package engine

import "testing"

func TestGoArch(t *testing.T) {
	for machine, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "s390x": "s390x"} {
		if got, err := goArch(machine); err != nil || got != want {
			t.Errorf("goArch(%q) = %q, %v; want %q", machine, got, err, want)
		}
	}
	if _, err := goArch("mips"); err == nil {
		t.Error("an unknown machine gave no error")
	}
}

func TestPlatformOf(t *testing.T) {
	for machine, want := range map[string]string{"x86_64": "linux/amd64", "aarch64": "linux/arm64", "armv7l": "linux/arm/v7", "armv6l": "linux/arm/v6"} {
		if got, err := platformOf("linux", machine); err != nil || got != want {
			t.Errorf("platformOf(linux, %q) = %q, %v; want %q", machine, got, err, want)
		}
	}
}
