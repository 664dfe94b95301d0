package gitref

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Records of what a build pushed live on the git remote beside its
// reservation, under refs/hoist/builds/TAG: a commit (child of the build's
// commit) whose tree holds one file, record.json. A registry's tags can be
// moved by anyone who can push there; this record is written once, by the
// run that tested the images, to another system, and is never moved, so a
// later promotion can tell the tested digest from whatever a tag names now.
const recordPrefix = "refs/hoist/builds/"

// recordFile is the file of a record commit's tree.
const recordFile = "record.json"

// ErrNoRecord: the remote has no record of that build.
var ErrNoRecord = errors.New("no record of the build on the remote")

// PutRecord stores data as the record of build tag (made from commit sha),
// creating refs/hoist/builds/TAG on the remote without force. A record
// already there with the same data is fine (a re-run); with other data it
// is refused: records are never rewritten.
func (g *Git) PutRecord(ctx context.Context, tag, sha string, data []byte) error {
	blob, err := g.input(ctx, data, "hash-object", "-w", "--stdin")
	if err != nil {
		return fmt.Errorf("recording %s: %w", tag, err)
	}
	tree, err := g.input(ctx, []byte("100644 blob "+blob+"\t"+recordFile+"\n"), "mktree")
	if err != nil {
		return fmt.Errorf("recording %s: %w", tag, err)
	}
	commit, err := g.input(ctx, []byte("hoist: what "+tag+" pushed\n"), "commit-tree", tree, "-p", sha)
	if err != nil {
		return fmt.Errorf("recording %s: %w", tag, err)
	}
	ref := recordPrefix + tag
	out, _, perr := g.run(ctx, "push", "--porcelain", "--no-verify", g.Remote, commit+":"+ref)
	if flag, _, ok := porcelain(out, ref); ok && (flag == "*" || flag == "=") {
		return nil
	}
	// Exists already: the same data is a re-run's record.
	have, gerr := g.Record(ctx, tag)
	if gerr == nil && bytes.Equal(have, data) {
		return nil
	}
	if gerr == nil {
		return fmt.Errorf("recording %s on %s: a different record of it is already there: a build's record is never rewritten; check who pushed %s", tag, g, tag)
	}
	if perr != nil {
		return fmt.Errorf("recording %s on %s: %w", tag, g, g.classify(perr))
	}
	return fmt.Errorf("recording %s on %s: %w", tag, g, gerr)
}

// Record reads the record of build tag from the remote; ErrNoRecord when
// there is none.
func (g *Git) Record(ctx context.Context, tag string) ([]byte, error) {
	ref := recordPrefix + tag
	out, err := g.git(ctx, "ls-remote", g.Remote, ref)
	if err != nil {
		return nil, fmt.Errorf("reading the record of %s on %s: %w", tag, g, g.classify(err))
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return nil, fmt.Errorf("%s on %s: %w", tag, g, ErrNoRecord)
	}
	if _, err := g.git(ctx, "cat-file", "-e", f[0]); err != nil {
		if _, err := g.git(ctx, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", g.Remote, ref); err != nil {
			return nil, fmt.Errorf("fetching the record of %s from %s: %w", tag, g, g.classify(err))
		}
	}
	data, err := g.git(ctx, "cat-file", "blob", f[0]+":"+recordFile)
	if err != nil {
		return nil, fmt.Errorf("reading the record of %s: %w", tag, err)
	}
	return []byte(data), nil
}

// input runs git with data on stdin and returns its trimmed output.
func (g *Git) input(ctx context.Context, data []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.Dir
	// commit-tree needs an identity; a record is Hoist's, not a person's.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C",
		"GIT_AUTHOR_NAME=hoist", "GIT_AUTHOR_EMAIL=hoist@localhost", "GIT_COMMITTER_NAME=hoist", "GIT_COMMITTER_EMAIL=hoist@localhost")
	cmd.Env = append(cmd.Env, g.Env...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", &gitError{args: args, stderr: errb.String(), err: err}
	}
	return strings.TrimSpace(out.String()), nil
}
