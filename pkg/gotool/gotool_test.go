package gotool

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A binary of the tools folder is asked its version once: later calls read
// the stamp, until the binary changes; a binary reporting another version
// is never taken.
func TestEnsureStampsTheVersion(t *testing.T) {
	dir := t.TempDir()
	asked := 0
	reports := "1.2.3"
	s := Spec{Name: "tool", Pinned: "1.2.3", Version: func(ctx context.Context, path string) (string, error) {
		asked++
		return reports, nil
	}}
	bin := BinaryPath(dir, "tool", "1.2.3")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, NoPath: true}
	for i := 0; i < 3; i++ {
		got, err := Ensure(t.Context(), s, o)
		if err != nil || got.Path != bin || got.Built {
			t.Fatalf("Ensure %d = %+v, %v", i, got, err)
		}
	}
	if asked != 1 {
		t.Fatalf("the binary was asked its version %d times, want once", asked)
	}
	// Replaced (another size and time): asked again.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n# another build\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(t.Context(), s, o); err != nil || asked != 2 {
		t.Fatalf("after a change: %v, asked %d times, want 2", err, asked)
	}
	// A stamp of another version does not vouch for it.
	if stamped(bin, "9.9.9") {
		t.Fatal("the stamp vouches for a version the binary did not report")
	}
	if _, err := os.Stat(filepath.Join(dir, "tool-1.2.3.version")); err != nil {
		t.Fatalf("no stamp beside the binary: %v", err)
	}
}
