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
