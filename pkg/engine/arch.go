package engine

import (
	"context"
	"fmt"
)

// Arch is the engine's CPU architecture in Go's spelling (GOARCH), the one
// a binary placed in a base image must be built for. It can differ from the
// caller's: a Mac talks to a Linux VM, a remote engine to another machine.
func (e *Engine) Arch(ctx context.Context) (string, error) {
	info, err := e.API.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("asking the engine its architecture: %w", err)
	}
	return goArch(info.Architecture)
}

// goArch maps the kernel's machine name (uname -m, as the engine reports it)
// to GOARCH.
func goArch(machine string) (string, error) {
	switch machine {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	case "armv7l", "armv6l", "arm":
		return "arm", nil
	case "i386", "i686", "386":
		return "386", nil
	case "ppc64le":
		return "ppc64le", nil
	case "s390x":
		return "s390x", nil
	case "riscv64":
		return "riscv64", nil
	}
	return "", fmt.Errorf("the engine runs on %q, an architecture Hoist cannot compile a base binary for", machine)
}

// Platform is the engine's own platform in OCI form (linux/amd64,
// linux/arm64, linux/arm/v7…): what an image gets built for when nobody
// chose, and what runs natively.
func (e *Engine) Platform(ctx context.Context) (string, error) {
	info, err := e.API.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("asking the engine its platform: %w", err)
	}
	return platformOf(info.OSType, info.Architecture)
}

// platformOf maps the engine's OS and kernel machine name to a platform.
func platformOf(osType, machine string) (string, error) {
	arch, err := goArch(machine)
	if err != nil {
		return "", err
	}
	if osType == "" {
		osType = "linux"
	}
	switch {
	case arch == "arm" && machine == "armv6l":
		return osType + "/arm/v6", nil
	case arch == "arm":
		return osType + "/arm/v7", nil
	}
	return osType + "/" + arch, nil
}
