package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	k3ddocker "github.com/k3d-io/k3d/v5/pkg/runtimes/docker"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
)

// unprivileged is k3d's Docker runtime with its exec made non-privileged,
// so k3d's own import can run on an engine that refuses privileged execs.
// Everything else, including the once-a-second poll for the exec's end, is
// k3d's (executeInNode in k3d v5.8.3 pkg/runtimes/docker/node.go), so the
// comparison measures k3d as it behaves.
type unprivileged struct {
	k3ddocker.Docker
	api client.APIClient
}

func (u unprivileged) ExecInNode(ctx context.Context, node *k3d.Node, cmd []string) error {
	_, err := u.exec(ctx, node, cmd, nil)
	return err
}

func (u unprivileged) ExecInNodeWithStdin(ctx context.Context, node *k3d.Node, cmd []string, stdin io.ReadCloser) error {
	_, err := u.exec(ctx, node, cmd, stdin)
	return err
}

func (u unprivileged) ExecInNodeGetLogs(ctx context.Context, node *k3d.Node, cmd []string) (*bufio.Reader, error) {
	logs, err := u.exec(ctx, node, cmd, nil)
	return bufio.NewReader(bytes.NewReader(logs)), err
}

func (u unprivileged) exec(ctx context.Context, node *k3d.Node, cmd []string, stdin io.ReadCloser) ([]byte, error) {
	attachStdin := stdin != nil
	ex, err := u.api.ContainerExecCreate(ctx, node.Name, container.ExecOptions{
		Privileged:   false, // k3d: true
		Tty:          !attachStdin,
		AttachStderr: true,
		AttachStdout: true,
		AttachStdin:  attachStdin,
		Cmd:          cmd,
	})
	if err != nil {
		return nil, fmt.Errorf("docker failed to create exec config for node '%s': %+v", node.Name, err)
	}
	conn, err := u.api.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{Tty: !attachStdin})
	if err != nil {
		return nil, fmt.Errorf("docker failed to attach to exec process in node '%s': %w", node.Name, err)
	}
	defer conn.Close()
	if stdin != nil {
		go func() {
			io.Copy(conn.Conn, stdin)
			stdin.Close()
		}()
	}
	for {
		info, err := u.api.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return nil, fmt.Errorf("docker failed to inspect exec process in node '%s': %w", node.Name, err)
		}
		if info.Running {
			time.Sleep(1 * time.Second)
			continue
		}
		logs, _ := io.ReadAll(conn.Reader)
		if info.ExitCode == 0 {
			return logs, nil
		}
		return logs, fmt.Errorf("exec process in node '%s' failed with exit code '%d'", node.Name, info.ExitCode)
	}
}
