package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// execResult is what one command run in a node produced.
type execResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// tail returns the last lines of the command's output, for error messages.
func (r execResult) tail() string {
	out := strings.TrimSpace(string(r.Stderr) + "\n" + string(r.Stdout))
	lines := strings.Split(out, "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// session is one command started in a node container without privilege,
// its stdin held open for the caller. The caller writes to Stdin (or not),
// then calls Wait.
type session struct {
	api    client.APIClient
	id     string
	resp   types.HijackedResponse
	stdout bytes.Buffer
	stderr bytes.Buffer
	read   chan struct{} // closed when the output has been read
	rerr   error         // the demultiplexer's result, set before read closes
	stop   func() bool
	stdin  bool // the command reads stdin, so it ends when stdin does
}

// start runs cmd in the container. withStdin keeps stdin attached for Write.
func start(ctx context.Context, api client.APIClient, containerID string, cmd []string, withStdin bool) (*session, error) {
	ec, err := api.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		Cmd:          cmd,
		AttachStdin:  withStdin,
		AttachStdout: true,
		AttachStderr: true,
		// Privileged stays false: engines like this one refuse privileged
		// execs, and ctr needs only the containerd socket.
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", strings.Join(cmd, " "), err)
	}
	resp, err := api.ContainerExecAttach(ctx, ec.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("attaching to %s: %w", strings.Join(cmd, " "), err)
	}
	s := &session{api: api, id: ec.ID, resp: resp, read: make(chan struct{}), stdin: withStdin}
	// Cancelling ctx closes the connection, which unblocks every read and
	// write on it; the goroutine below then ends.
	s.stop = context.AfterFunc(ctx, resp.Close)
	go func() {
		_, err := stdcopy.StdCopy(&s.stdout, &s.stderr, resp.Reader)
		// The output ends when the command does. If it ended early (the
		// node died, ctr failed), closing the connection makes writes to
		// its stdin fail at once instead of blocking the shared stream.
		resp.Close()
		s.rerr = err
		close(s.read)
	}()
	if !withStdin {
		_ = resp.CloseWrite() // no stdin attached: nothing to end
	}
	return s, nil
}

// Write sends p to the command's stdin.
func (s *session) Write(p []byte) (int, error) { return s.resp.Conn.Write(p) }

// Abort closes the connection; Wait then returns promptly.
func (s *session) Abort() { s.resp.Close() }

// Wait closes stdin, waits for the command to end and returns its output and
// exit code.
func (s *session) Wait(ctx context.Context) (execResult, error) {
	// End of stdin; on a connection already closed (the command ended
	// early, or Abort) this fails, and the output below tells why.
	_ = s.resp.CloseWrite()
	select {
	case <-s.read:
	case <-ctx.Done():
		s.resp.Close()
		<-s.read
	}
	s.stop()
	s.resp.Close()
	res := execResult{Stdout: s.stdout.Bytes(), Stderr: s.stderr.Bytes()}
	if ctx.Err() != nil {
		if s.stdin {
			// A command fed on stdin (ctr images import) stops when its
			// stdin ends; wait for that, within bounds, so a cancelled
			// load leaves nothing running in the node. The engine may
			// not have started it yet: wait for it to start, then end.
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = s.exit(ectx, true)
		}
		return res, ctx.Err()
	}
	code, err := s.exit(ctx, false)
	if err != nil {
		return res, err
	}
	res.ExitCode = code
	if s.rerr != nil && !errors.Is(s.rerr, io.EOF) && code == 0 {
		return res, fmt.Errorf("reading output: %w", s.rerr)
	}
	return res, nil
}

// exit waits for the command to end and returns its exit code; started
// also waits for the engine to have started it (a process ID). The output
// ends when the process does, but the engine may take a moment more to
// record the exit, so it asks again quickly rather than once a second.
func (s *session) exit(ctx context.Context, started bool) (int, error) {
	delay := 2 * time.Millisecond
	for {
		info, err := s.api.ContainerExecInspect(ctx, s.id)
		if err != nil {
			return -1, fmt.Errorf("reading the exit code: %w", err)
		}
		if !info.Running && (!started || info.Pid != 0) {
			return info.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// run executes cmd in the container with stdin closed and returns its output.
func run(ctx context.Context, api client.APIClient, containerID string, cmd ...string) (execResult, error) {
	s, err := start(ctx, api, containerID, cmd, false)
	if err != nil {
		return execResult{}, err
	}
	return s.Wait(ctx)
}
