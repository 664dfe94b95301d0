package ctest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// LabelOwner marks each test container with the process that made it, as
// HOST:PIDNS:PID:START (PIDNS is its PID namespace, so a run in a
// container sharing the host's name is never judged by PIDs it cannot
// see; START is the process's start time in clock ticks since boot, so a
// reused PID is never taken for the owner). A run killed outright cannot
// remove its containers; the next run on this host removes those whose
// owner is gone.
const LabelOwner = "io.hoist.test.owner"

var (
	ownerOnce sync.Once
	ownerVal  string
)

// owner is this process's LabelOwner value.
func owner() string {
	ownerOnce.Do(func() {
		host, _ := os.Hostname()
		pid := os.Getpid()
		ownerVal = host + ":" + pidNamespace() + ":" + strconv.Itoa(pid) + ":" + startTime(pid)
	})
	return ownerVal
}

// pidNamespace is this process's PID namespace as /proc names it (its
// inode number), or "" where it cannot be read.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid") // pid:[4026531836]
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(ns, "pid:["), "]")
}

// startTime reads a process's start time from /proc ("" where there is
// none to read).
func startTime(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; fields after its ')' are
	// plain. The start time is field 22, the 20th after the name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// ownerGone reports whether label names a process of this host and PID
// namespace that no longer runs. A label of another host or namespace, or
// one it cannot read, is never gone: the engine may be shared.
func ownerGone(label string) bool {
	f := strings.Split(label, ":")
	me := strings.Split(owner(), ":") // this host and namespace, read once
	if len(f) != 4 || me[1] == "" || f[0] != me[0] || f[1] != me[1] || f[3] == "" {
		return false
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil || pid <= 0 {
		return false
	}
	return startTime(pid) != f[3]
}

// removeLeftovers removes test containers whose owner is gone: left by a
// run that was killed before it could remove them. Errors are ignored: the
// next run tries again.
func removeLeftovers(ctx context.Context, api client.APIClient) {
	cs, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelOwner))})
	if err != nil {
		return
	}
	for _, c := range cs {
		if ownerGone(c.Labels[LabelOwner]) {
			_ = api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
}
