// Package gobin compiles a Go main package into a static Linux binary, so a
// base image can hold a program with no shell, no libc and no pull: every
// machine that runs Hoist has Go, and Go cross-compiles with no toolchain.
package gobin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options tune a build.
type Options struct {
	// Arch is the GOARCH to build for (the engine's, e.g. amd64).
	Arch string
	// Env is the go command's environment (PATH, HOME, GOCACHE …); the
	// caller passes it, this package reads none. CGO_ENABLED, GOOS and
	// GOARCH are set on top of it.
	Env []string
	// Go is the go command (default "go" on PATH).
	Go string
}

// Build compiles the main package in dir into out, for linux/o.Arch, with
// no cgo, trimmed paths and no VCS stamp, so the same source gives the same
// bytes on every machine. When out exists and no Go source of dir's module
// changed since it was built, the go command is not run at all: even a
// cached go build costs half a second, which an unchanged Images run must
// not pay.
func Build(ctx context.Context, dir, out string, o Options) error {
	if o.Arch == "" {
		return fmt.Errorf("compiling %s: no target architecture", dir)
	}
	key, err := sourceKey(dir, o.Arch)
	if err != nil {
		return fmt.Errorf("compiling %s: %w", dir, err)
	}
	stamp := out + ".inputs"
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key {
		if _, err := os.Stat(out); err == nil {
			return nil
		}
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	if _, err := exec.LookPath(goCmd); err != nil {
		return fmt.Errorf("compiling %s: the go command is not on PATH: install Go (https://go.dev/dl) or add it to PATH", dir)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("compiling %s: %w", dir, err)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("compiling %s: %w", dir, err)
	}
	// Write beside the target and rename, so a failed or cancelled build
	// never leaves a half-written binary that the next run would take.
	tmp := absOut + ".tmp"
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", tmp, ".")
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), o.Env...), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		if ctx.Err() != nil {
			return fmt.Errorf("compiling %s: %w", dir, ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("compiling %s for linux/%s: %s", dir, o.Arch, strings.TrimSpace(msg.String()))
		}
		return fmt.Errorf("compiling %s for linux/%s: %w", dir, o.Arch, err)
	}
	if err := os.Rename(tmp, absOut); err != nil {
		return fmt.Errorf("compiling %s: %w", dir, err)
	}
	if err := os.WriteFile(stamp, []byte(key), 0o644); err != nil {
		return fmt.Errorf("compiling %s: %w", dir, err)
	}
	return nil
}
