package gitref

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CommitFiles writes files (path in the branch -> content) to branch of
// remote as one commit with message, creating the branch when it is not
// there. It reports whether a commit was pushed: files already holding
// that content make none. A push another writer beat is retried on the
// branch's new head, a few times. g's Env (identity, credentials) applies;
// g's Dir is not touched.
func (g *Git) CommitFiles(ctx context.Context, remote, branch string, files map[string][]byte, message string) (bool, error) {
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		pushed, retry, err := g.commitOnce(ctx, remote, branch, files, message)
		if err == nil || !retry {
			return pushed, err
		}
		last = err
	}
	return false, fmt.Errorf("committing to %s of %s: other writers kept moving the branch: %w", branch, remote, last)
}

func (g *Git) commitOnce(ctx context.Context, remote, branch string, files map[string][]byte, message string) (pushed, retry bool, err error) {
	dir, err := os.MkdirTemp("", "hoist-commit-")
	if err != nil {
		return false, false, err
	}
	defer os.RemoveAll(dir)
	w := &Git{Dir: dir, Env: g.Env}
	if _, err := w.git(ctx, "init", "-q"); err != nil {
		return false, false, err
	}
	exists := true
	if _, err := w.git(ctx, "fetch", "-q", "--depth", "1", remote, "refs/heads/"+branch); err != nil {
		out, lerr := w.git(ctx, "ls-remote", "--heads", remote, branch)
		if lerr != nil {
			return false, false, fmt.Errorf("reaching %s: %w", remote, g.classify(lerr))
		}
		if strings.TrimSpace(out) != "" {
			return false, false, g.classify(err)
		}
		exists = false
	}
	if exists {
		if _, err := w.git(ctx, "checkout", "-q", "-B", branch, "FETCH_HEAD"); err != nil {
			return false, false, err
		}
	} else if _, err := w.git(ctx, "checkout", "-q", "--orphan", branch); err != nil {
		return false, false, err
	}
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if !strings.HasPrefix(full, dir+string(filepath.Separator)) {
			return false, false, fmt.Errorf("path %q leaves the branch's tree", p)
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, false, err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return false, false, err
		}
		if _, err := w.git(ctx, "add", "--", filepath.FromSlash(p)); err != nil {
			return false, false, err
		}
	}
	if out, err := w.git(ctx, "status", "--porcelain"); err != nil {
		return false, false, err
	} else if strings.TrimSpace(out) == "" {
		return false, false, nil // the branch holds these files already
	}
	commit := []string{"commit", "-q", "-m", message}
	if out, _ := w.git(ctx, "config", "user.email"); strings.TrimSpace(out) == "" {
		// No identity on this machine (a fresh runner): commit as Hoist.
		commit = append([]string{"-c", "user.name=Hoist", "-c", "user.email=hoist@localhost"}, commit...)
	}
	if _, err := w.git(ctx, commit...); err != nil {
		return false, false, err
	}
	if _, err := w.git(ctx, "push", "-q", remote, "HEAD:refs/heads/"+branch); err != nil {
		// Rejected because the branch moved (or was created) meanwhile:
		// start again from its new head.
		var ge *gitError
		if errors.As(err, &ge) && (strings.Contains(ge.stderr, "rejected") || strings.Contains(ge.stderr, "fetch first") || strings.Contains(ge.stderr, "non-fast-forward")) {
			return false, true, g.classify(err)
		}
		return false, false, g.classify(err)
	}
	return true, false, nil
}
