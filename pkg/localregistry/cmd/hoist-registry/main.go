// Command hoist-registry serves a checkout's local registry (see package
// localregistry) until SIGTERM or SIGINT. Ensure builds and starts it,
// detached, so it outlives the run that started it.
//
// With -ready-fd N it writes one line to descriptor N and closes it:
// "ready PORT" once serving, "busy MESSAGE" when the port is taken, or
// "error MESSAGE".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hoistci/hoist/pkg/localregistry"
)

func main() {
	dir := flag.String("dir", "", "the registry's folder")
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: a free one)")
	readyFD := flag.Int("ready-fd", 0, "descriptor to report readiness on")
	flag.Parse()
	var ready *os.File
	if *readyFD > 0 {
		ready = os.NewFile(uintptr(*readyFD), "ready")
	}
	report := func(format string, a ...any) {
		if ready != nil {
			fmt.Fprintf(ready, format+"\n", a...)
			ready.Close()
			ready = nil
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := localregistry.Serve(ctx, localregistry.ServeOptions{
		Dir:   *dir,
		Port:  *port,
		Log:   os.Stderr,
		Ready: func(p int) { report("ready %d", p) },
	})
	if err != nil {
		if errors.Is(err, localregistry.ErrPortBusy) {
			report("busy %v", err)
		}
		report("error %v", err)
		fmt.Fprintln(os.Stderr, "hoist-registry:", err)
		stop()
		os.Exit(1)
	}
}
