package cluster

// The I/O of a load: the engine's save, each node's import, and the one
// stream written to all of them at once.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/docker/docker/client"
)

// sink is one node's import.
type sink struct {
	node string
	s    *session
	err  error
}

// fanout writes one stream to every node's import. Each chunk goes to all
// nodes at the same time, so they ingest side by side rather than in turn.
// A node that fails is dropped and remembered; the others go on. It fails
// only when every node has failed.
type fanout struct {
	sinks   []*sink
	flowing bool // a first chunk went out
}

// streamHook, when set (tests), runs once the first chunk of a load's
// stream has reached the nodes, with the stream held until it returns: a
// test can cancel the load or stop a node at a known point mid-import.
var streamHook func()

func (f *fanout) Write(p []byte) (int, error) {
	n, err := f.write(p)
	if err == nil && !f.flowing {
		f.flowing = true
		if streamHook != nil {
			streamHook()
		}
	}
	return n, err
}

func (f *fanout) write(p []byte) (int, error) {
	var live []*sink
	for _, k := range f.sinks {
		if k.err == nil {
			live = append(live, k)
		}
	}
	if len(live) == 0 {
		return 0, errors.New("every node stopped reading")
	}
	if len(live) == 1 {
		live[0].write(p)
		if live[0].err != nil {
			return 0, errors.New("every node stopped reading")
		}
		return len(p), nil
	}
	var wg sync.WaitGroup
	for _, k := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.write(p)
		}()
	}
	wg.Wait()
	for _, k := range live {
		if k.err == nil {
			return len(p), nil
		}
	}
	return 0, errors.New("every node stopped reading")
}

// write sends p to the node; a failure marks the node failed and ends its
// import, and is reported by wait.
func (k *sink) write(p []byte) {
	if _, err := k.s.Write(p); err != nil {
		k.err = err
		k.s.Abort()
	}
}

func (f *fanout) abort() {
	for _, k := range f.sinks {
		k.s.Abort()
	}
}

// wait ends every node's import and returns one error per failed node.
func (f *fanout) wait(ctx context.Context) []error {
	errs := make([]error, len(f.sinks))
	var wg sync.WaitGroup
	for i, k := range f.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := k.s.Wait(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				errs[i] = fmt.Errorf("node %s: importing images: %w", k.node, err)
			case r.ExitCode == 137:
				errs[i] = fmt.Errorf("node %s: ctr images import was killed (exit 137): the node stopped or ran out of memory; check it with docker ps -a and load again", k.node)
			case r.ExitCode != 0:
				errs[i] = fmt.Errorf("node %s: ctr images import exited %d: %s", k.node, r.ExitCode, r.tail())
			case k.err != nil:
				errs[i] = fmt.Errorf("node %s: the node stopped reading the image stream: %v", k.node, k.err)
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Error() < out[j].Error() })
	return out
}

// saveParts is how many `docker save` requests a load's images are split
// into, all started at once. An engine that writes a save out in full
// before sending its first byte (the classic store does, into a temporary
// folder) then sends the first part while it still writes the others, and
// the nodes start importing that much sooner. Layers the parts share are
// saved by each and sent once.
const saveParts = 3

// saving is the `docker save` of a load's images under way, in parts.
type saving struct {
	parts []*savePart
}

// savePart is one `docker save` under way. Reading it waits for the
// engine's answer.
type savePart struct {
	done   chan struct{}
	rc     io.ReadCloser
	err    error
	cancel context.CancelFunc
}

func startSave(ctx context.Context, api client.APIClient, refs []string) *saving {
	s := &saving{}
	n := min(saveParts, len(refs))
	for i := range n {
		s.parts = append(s.parts, startSavePart(ctx, api, refs[i*len(refs)/n:(i+1)*len(refs)/n]))
	}
	return s
}

func startSavePart(ctx context.Context, api client.APIClient, refs []string) *savePart {
	ctx, cancel := context.WithCancel(ctx)
	s := &savePart{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		s.rc, s.err = api.ImageSave(ctx, refs)
		if s.err != nil {
			s.err = fmt.Errorf("saving %s from the engine: %w", strings.Join(refs, ", "), s.err)
		}
	}()
	return s
}

func (s *savePart) Read(p []byte) (int, error) {
	<-s.done
	if s.err != nil {
		return 0, s.err
	}
	return s.rc.Read(p)
}

// first waits for the engine to answer the first part, and returns its
// error, so a save the engine refuses fails the load before a node is fed.
func (s *saving) first() error {
	<-s.parts[0].done
	return s.parts[0].err
}

// streams returns the parts, in order; each waits for its answer when read.
func (s *saving) streams() []io.Reader {
	var out []io.Reader
	for _, p := range s.parts {
		out = append(out, p)
	}
	return out
}

// failed returns the first part's error the engine answered with, if any.
func (s *saving) failed() error {
	for _, p := range s.parts {
		select {
		case <-p.done:
			if p.err != nil {
				return p.err
			}
		default:
		}
	}
	return nil
}

// close ends the saves, whether or not they were read.
func (s *saving) close() {
	for _, p := range s.parts {
		p.cancel()
		<-p.done
		if p.rc != nil {
			p.rc.Close()
		}
	}
}

func importCmd(unpack bool) []string {
	cmd := append(append([]string{}, ctr...), "images", "import", "--all-platforms")
	if !unpack {
		cmd = append(cmd, "--no-unpack")
	}
	return append(cmd, "-")
}

// starting is an import being started in a node ahead of need.
type starting struct {
	done chan struct{}
	s    *session
	err  error
}

func startImport(ctx context.Context, api client.APIClient, n Node, unpack bool) *starting {
	st := &starting{done: make(chan struct{})}
	go func() {
		defer close(st.done)
		st.s, st.err = start(ctx, api, n.Name, importCmd(unpack), true)
	}()
	return st
}

func (st *starting) get() (*session, error) {
	<-st.done
	return st.s, st.err
}

// cancel ends an import that was not needed: the connection closes before
// any byte was sent, so ctr reads an empty archive and imports nothing.
func (st *starting) cancel(ctx context.Context) {
	if s, err := st.get(); err == nil {
		s.Abort()
		_, _ = s.Wait(context.WithoutCancel(ctx)) // it read nothing; how it ended does not matter
	}
}
