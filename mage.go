//go:build ignore

// Zero-install entry point: `go run mage.go <target>` works on a machine that
// has only Go. `go run mage.go -l` lists the targets.
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
