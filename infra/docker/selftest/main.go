// Command selftest is the one program in this repository's demo base image
// (hoist.yaml bases: hoist/base:local). Hoist compiles it for the engine's
// Linux, so the base needs nothing but Go on the host: no busybox, no pull.
// It stands in for the shell the images would otherwise need:
//
//	selftest entry FILE   write the build's entry line (a RUN step)
//	selftest demo         check a demo image (its test command)
//	selftest toolbox      check the toolbox image (its test command)
//	selftest sleep SECS   stay up (the toolbox's in-cluster deployment)
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "selftest:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: selftest entry FILE | demo | toolbox | sleep SECONDS")
	}
	switch args[0] {
	case "entry":
		if len(args) != 2 {
			return fmt.Errorf("usage: selftest entry FILE")
		}
		return os.WriteFile(args[1], []byte(entry()+"\n"), 0o644)
	case "demo":
		return demo()
	case "toolbox":
		return toolbox()
	case "sleep":
		if len(args) != 2 {
			return fmt.Errorf("usage: selftest sleep SECONDS")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("sleep %q: want whole seconds", args[1])
		}
		time.Sleep(time.Duration(n) * time.Second)
		return nil
	}
	return fmt.Errorf("unknown command %q: want entry, demo, toolbox or sleep", args[0])
}

// entry is what a demo image records at build time and checks at test time.
func entry() string {
	return fmt.Sprintf("python=%s runtime=%s", os.Getenv("PYTHON_VERSION"), os.Getenv("RUNTIME"))
}

// demo checks that the image is the matrix entry it was built for.
func demo() error {
	if os.Getenv("PYTHON_VERSION") == "" {
		return fmt.Errorf("PYTHON_VERSION is not set")
	}
	got, err := os.ReadFile("/app/entry")
	if err != nil {
		return err
	}
	if want := entry(); !bytes.Equal(bytes.TrimSpace(got), []byte(want)) {
		return fmt.Errorf("entry mismatch: built as %q, running as %q", bytes.TrimSpace(got), want)
	}
	if os.Getenv("RUNTIME") == "cuda" && os.Getenv("HOIST_DEMO_ACCELERATOR") != "cuda" {
		return fmt.Errorf("cuda image without HOIST_DEMO_ACCELERATOR")
	}
	fmt.Printf("ok: %s\n", bytes.TrimSpace(got))
	return nil
}

// toolbox checks that Hoist's engine bring-up script is in the image whole.
func toolbox() error {
	const p = "/usr/share/hoist/engine-up.sh"
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte("#!/usr/bin/env bash\n")) || !bytes.Contains(b, []byte("dockerd --bridge=none")) {
		return fmt.Errorf("%s is not Hoist's engine-up.sh", p)
	}
	fmt.Println("ok: toolbox")
	return nil
}
