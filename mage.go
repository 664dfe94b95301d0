//go:build ignore

// Zero-install entry point: `go run mage.go <target>` works on a machine that
// has only Go. `go run mage.go -l` lists the targets.
//
// Mage compiles the magefile through one generated file in magefiles/ and one
// binary in its cache, both shared: two runs compiling at once (two terminals,
// two checkouts, a CI matrix on one machine) clobber each other's files and
// fail. So this entry compiles under a lock file into a binary of its own,
// then runs that binary outside the lock: runs wait for each other only while
// compiling.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mage"
	"github.com/magefile/mage/mg"
)

func main() {
	inv, cmd, err := mage.Parse(os.Stderr, os.Stdout, os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil || cmd != mage.None || inv.CompileOut != "" || inv.List || inv.Help:
		// Mage's own commands (-version, -clean, -compile …) and -l and -h,
		// which it answers without compiling, as mage runs them.
		os.Exit(mage.Main())
	}
	inv.Stderr, inv.Stdin = os.Stderr, os.Stdin
	cache := inv.CacheDir
	if cache == "" {
		cache = mg.CacheDir()
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		log.Fatalf("mage: %v", err)
	}
	exe := filepath.Join(cache, fmt.Sprintf("hoist-run-%d", os.Getpid()))
	unlock := lock(filepath.Join(cache, "hoist-compile.lock"))
	compile := inv
	compile.CompileOut, compile.Stdout = exe, os.Stderr
	code := mage.Invoke(compile)
	unlock()
	if code != 0 {
		os.Exit(code)
	}
	code = mage.RunCompiled(inv, exe, log.New(os.Stderr, "", 0))
	os.Remove(exe)
	os.Exit(code)
}

// lock takes the compile lock: a file created exclusively, which works on
// every system Go runs on. One left by a killed run is taken over once it is
// older than any compile takes.
func lock(path string) (unlock func()) {
	told := false
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }
		}
		if st, serr := os.Stat(path); serr == nil && time.Since(st.ModTime()) > 10*time.Minute {
			os.Remove(path)
			continue
		}
		if !told {
			fmt.Fprintf(os.Stderr, "mage: another run is compiling the magefile (%s); waiting\n", path)
			told = true
		}
		time.Sleep(100 * time.Millisecond)
	}
}
