// Command hoist-trivy-worker is Trivy's own command line, run many times in
// one process: Hoist's Scan sends each image's scan (`trivy image` as a
// client of the run's `trivy server`) and each SBOM's `trivy convert`
// through a few of these instead of starting the 130 MB trivy binary once
// per image and again per SBOM (about 50 ms of CPU each, before any work).
//
// Each line on standard input is one request, {"args": ["image", ...]} or
// {"args": ["convert", ...]}: a trivy command line, run by Trivy's own
// command tree (the same flags, scanners and report writers as the trivy
// binary of this release), one at a time, with viper's global settings
// reset after each, as Trivy's own integration tests run it. Each answer is
// one line on file descriptor 3, {"error": "..."} (empty when the command
// succeeded), in the order of the requests. The process ends when standard
// input closes. `--version` prints Trivy's version line.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/viper"

	"github.com/aquasecurity/trivy/pkg/commands"
	"github.com/aquasecurity/trivy/pkg/version/app"

	_ "modernc.org/sqlite" // as trivy's own main: the RPM DB and Java DB driver
)

type request struct {
	Args []string `json:"args"`
}

type answer struct {
	Error string `json:"error"`
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Printf("Version: %s\n", app.Version())
		return
	}
	answers := os.NewFile(3, "answers")
	if answers == nil {
		fmt.Fprintln(os.Stderr, "hoist-trivy-worker: answers go to file descriptor 3, which is not open")
		os.Exit(2)
	}
	enc := json.NewEncoder(answers)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := enc.Encode(answer{Error: run(sc.Bytes())}); err != nil {
			fmt.Fprintln(os.Stderr, "hoist-trivy-worker: writing an answer:", err)
			os.Exit(1)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "hoist-trivy-worker: reading requests:", err)
		os.Exit(1)
	}
}

// run runs one request and returns its error, "" on success.
func run(line []byte) (msg string) {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return "a request that is not JSON: " + err.Error()
	}
	if len(req.Args) == 0 || (req.Args[0] != "image" && req.Args[0] != "convert") {
		return fmt.Sprintf("only image and convert are run here, not %q", req.Args)
	}
	defer viper.Reset()
	defer func() {
		if p := recover(); p != nil {
			msg = fmt.Sprintf("trivy %s panicked: %v", req.Args[0], p)
		}
	}()
	cmd := commands.NewApp()
	cmd.SetOut(io.Discard)
	cmd.SetArgs(req.Args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		return err.Error()
	}
	return ""
}
