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

// Git is a Reserver that creates tags with the git program: a non-forced
// `git push REMOTE SHA:refs/tags/NAME`, which any git server refuses
// atomically when the tag exists.
type Git struct {
	Dir    string // the checkout
	Remote string // remote name or URL, e.g. origin
	// Env is added to git's environment (e.g. GIT_SSH_COMMAND). Prompts are
	// always disabled: a missing credential fails instead of hanging CI.
	Env []string
}

func (g *Git) String() string {
	if u, err := g.git(context.Background(), "remote", "get-url", g.Remote); err == nil {
		return fmt.Sprintf("remote %s (%s)", g.Remote, redact(strings.TrimSpace(u)))
	}
	return "remote " + redact(g.Remote)
}

// gitError is a failed git command with its stderr.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := oneLine(redact(e.stderr))
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("git %s: %s", redact(strings.Join(e.args, " ")), msg)
}

func (e *gitError) Unwrap() error { return e.err }

// run runs git in the checkout and returns stdout and stderr.
func (g *Git) run(ctx context.Context, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never", "LC_ALL=C")
	cmd.Env = append(cmd.Env, g.Env...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return out.String(), errb.String(), &gitError{args: args, stderr: errb.String(), err: err}
	}
	return out.String(), errb.String(), nil
}

func (g *Git) git(ctx context.Context, args ...string) (string, error) {
	out, _, err := g.run(ctx, args...)
	return out, err
}

// classify turns a failed remote command into ErrNoRemote or ErrAuth when
// git's message says so, keeping git's words (credentials removed).
func (g *Git) classify(err error) error {
	var ge *gitError
	if !errors.As(err, &ge) {
		return err
	}
	s := strings.ToLower(ge.stderr)
	switch {
	case strings.Contains(s, "authentication failed"),
		strings.Contains(s, "could not read username"),
		strings.Contains(s, "could not read password"),
		strings.Contains(s, "terminal prompts disabled"),
		strings.Contains(s, "permission denied"),
		strings.Contains(s, "requested url returned error: 401"),
		strings.Contains(s, "requested url returned error: 403"),
		strings.Contains(s, "the requested url returned error: 401"),
		strings.Contains(s, "invalid username or password"):
		return fmt.Errorf("%w: %v: give git credentials for %s (in CI: a token with contents: write, e.g. actions/checkout's persisted GITHUB_TOKEN)", ErrAuth, err, redact(g.Remote))
	case strings.Contains(s, "does not appear to be a git repository"),
		strings.Contains(s, "no such remote"),
		strings.Contains(s, "repository not found"),
		strings.Contains(s, "not found") && strings.Contains(s, "repository"):
		return fmt.Errorf("%w: %v: add the remote (git remote add %s URL) or set release.remote in hoist.yaml", ErrNoRemote, err, redact(g.Remote))
	}
	return err
}

// CheckRemote fails with ErrNoRemote when the remote is not configured.
// It does not contact the remote.
func (g *Git) CheckRemote(ctx context.Context) error {
	if strings.Contains(g.Remote, "/") || strings.Contains(g.Remote, ":") {
		return nil // a URL or path, not a remote name
	}
	if _, err := g.git(ctx, "remote", "get-url", g.Remote); err != nil {
		return fmt.Errorf("%w: git has no remote %q: add it (git remote add %s URL) or set release.remote in hoist.yaml", ErrNoRemote, g.Remote, g.Remote)
	}
	return nil
}

// CreateTag pushes sha to refs/tags/name without force. git's porcelain
// output tells a created tag (*) from one already there at this commit (=)
// or elsewhere (! … already exists), so an existing tag is never taken for
// a reservation, even one at the same commit.
func (g *Git) CreateTag(ctx context.Context, name, sha string) error {
	ref := "refs/tags/" + name
	for try := 0; ; try++ {
		out, _, err := g.run(ctx, "push", "--porcelain", "--no-verify", g.Remote, sha+":"+ref)
		flag, summary, found := porcelain(out, ref)
		switch {
		case found && flag == "*":
			if err != nil {
				return fmt.Errorf("pushing %s: git reported the tag as new but failed: %w", name, err)
			}
			return nil
		case found && flag == "=":
			return &ExistsError{Tag: name, SHA: sha}
		case found && flag == "!" && strings.Contains(summary, "already exists"):
			return &ExistsError{Tag: name}
		case found && flag == "!" && strings.Contains(summary, "remote rejected"):
			// The server refused the update after advertising no such tag:
			// usually another push created it in between. Read it back to
			// tell that from a hook or a protected-tag rule.
			_, ok, lerr := g.Tag(ctx, name)
			if lerr != nil {
				return fmt.Errorf("pushing %s: %s; reading it back: %w", name, summary, lerr)
			}
			if ok {
				return &ExistsError{Tag: name}
			}
			if try < 3 && strings.Contains(summary, "failed to") {
				continue // a transient ref-lock failure: the tag is still free
			}
			return fmt.Errorf("pushing %s: the remote rejected it: %s: check the server's tag rules and hooks", name, summary)
		case found:
			return fmt.Errorf("pushing %s: %s", name, summary)
		}
		if err == nil {
			return fmt.Errorf("pushing %s: git printed no result for %s: %q", name, ref, redact(out))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pushing %s: %w", name, ctx.Err())
		}
		return g.classify(err)
	}
}

// porcelain finds ref's line in `git push --porcelain` output:
// "FLAG \t FROM:TO \t SUMMARY".
func porcelain(out, ref string) (flag, summary string, ok bool) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.SplitN(l, "\t", 3)
		if len(f) == 3 && strings.HasSuffix(f[1], ":"+ref) {
			return strings.TrimSpace(f[0]), f[2], true
		}
	}
	return "", "", false
}

// Tag reads refs/tags/name on the remote, peeling an annotated tag.
func (g *Git) Tag(ctx context.Context, name string) (string, bool, error) {
	// The peeled pattern must be asked for: with a pattern, ls-remote shows
	// an annotated tag's object but not the commit it points at.
	out, err := g.git(ctx, "ls-remote", "--tags", g.Remote, "refs/tags/"+name, "refs/tags/"+name+"^{}")
	if err != nil {
		return "", false, g.classify(err)
	}
	var sha, peeled string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		switch f[1] {
		case "refs/tags/" + name:
			sha = f[0]
		case "refs/tags/" + name + "^{}":
			peeled = f[0]
		}
	}
	if peeled != "" {
		sha = peeled
	}
	return sha, sha != "", nil
}

// Tags lists the remote's tags starting with prefix.
func (g *Git) Tags(ctx context.Context, prefix string) ([]string, error) {
	out, err := g.git(ctx, "ls-remote", "--tags", "--refs", g.Remote)
	if err != nil {
		return nil, g.classify(err)
	}
	var tags []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.HasPrefix(f[1], "refs/tags/"+prefix) {
			tags = append(tags, strings.TrimPrefix(f[1], "refs/tags/"))
		}
	}
	return tags, nil
}

// Checkout is the state of the local checkout that a release depends on.
type Checkout struct {
	SHA    string // HEAD commit
	Branch string // "" when detached
	Dirty  []string
}

// Inspect reads HEAD, its branch and any uncommitted change (tracked or
// untracked, ignored files excepted).
func (g *Git) Inspect(ctx context.Context) (*Checkout, error) {
	sha, err := g.git(ctx, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return nil, fmt.Errorf("reading HEAD in %s: %w: run inside a git checkout with at least one commit", g.Dir, err)
	}
	c := &Checkout{SHA: strings.TrimSpace(sha)}
	if b, err := g.git(ctx, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		c.Branch = strings.TrimSpace(b)
	}
	st, err := g.git(ctx, "status", "--porcelain", "--untracked-files=all")
	if err != nil {
		return nil, fmt.Errorf("reading the checkout's status: %w", err)
	}
	for _, l := range strings.Split(st, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			c.Dirty = append(c.Dirty, l)
		}
	}
	return c, nil
}

// TagsAtHead lists the local tags pointing at HEAD.
func (g *Git) TagsAtHead(ctx context.Context) ([]string, error) {
	out, err := g.git(ctx, "tag", "--points-at", "HEAD")
	if err != nil {
		return nil, fmt.Errorf("listing tags at HEAD: %w", err)
	}
	return strings.Fields(out), nil
}

// CheckPush proves the remote would accept a new tag from this checkout,
// without creating one: `git push --dry-run` of HEAD to a probe tag
// contacts the remote (authenticating as a real push does) and runs the
// checks git can make locally. A server-side hook can still refuse the
// real push; Reserve reports that with the server's words.
func (g *Git) CheckPush(ctx context.Context) error {
	_, _, err := g.run(ctx, "push", "--dry-run", "--porcelain", "--no-verify", g.Remote, "HEAD:refs/tags/hoist-preflight-probe")
	if err != nil {
		return fmt.Errorf("checking that %s accepts tags (git push --dry-run): %w", g, g.classify(err))
	}
	return nil
}

// Commit is one commit of a release's history.
type Commit struct {
	SHA     string
	Author  string
	Subject string
}

// Log lists the commits reachable from to but not from from (all of them
// when from is empty), newest first, merges left out.
func (g *Git) Log(ctx context.Context, from, to string) ([]Commit, error) {
	rng := to
	if from != "" {
		rng = from + ".." + to
	}
	out, err := g.git(ctx, "log", "--no-merges", "--format=%H%x09%an%x09%s", rng, "--")
	if err != nil {
		return nil, fmt.Errorf("listing the commits of %s: %w", rng, err)
	}
	var cs []Commit
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.SplitN(l, "\t", 3); len(f) == 3 {
			cs = append(cs, Commit{SHA: f[0], Author: f[1], Subject: f[2]})
		}
	}
	return cs, nil
}

// TagsMerged lists the local tags reachable from HEAD.
func (g *Git) TagsMerged(ctx context.Context) ([]string, error) {
	out, err := g.git(ctx, "tag", "--list", "--merged", "HEAD")
	if err != nil {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	return strings.Fields(out), nil
}
