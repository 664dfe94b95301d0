// Package gitinfo reads what the labels need from a git checkout: the commit,
// its time and the origin URL. Outside a checkout every field is empty.
package gitinfo

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"time"
)

// Info describes the checkout at a folder.
type Info struct {
	Revision string    // HEAD commit
	Time     time.Time // HEAD's commit time
	Origin   string    // URL of the origin remote, as an https URL when it can be
}

// Read asks git about dir. Errors are not returned: a folder that is not a
// checkout (or a machine without git) gives an empty Info.
func Read(ctx context.Context, dir string) Info {
	var info Info
	out, err := git(ctx, dir, "show", "-s", "--format=%H %ct", "HEAD")
	if err != nil {
		return info
	}
	f := strings.Fields(out)
	if len(f) == 2 {
		info.Revision = f[0]
		var sec int64
		for _, c := range f[1] {
			sec = sec*10 + int64(c-'0')
		}
		info.Time = time.Unix(sec, 0).UTC()
	}
	if u, err := git(ctx, dir, "remote", "get-url", "origin"); err == nil {
		info.Origin = httpsURL(u)
	}
	return info
}

// httpsURL turns git@github.com:o/r.git into https://github.com/o/r and drops
// any user:password part, so no credential lands in a label.
func httpsURL(u string) string {
	u = strings.TrimSuffix(strings.TrimSpace(u), ".git")
	if strings.HasPrefix(u, "git@") {
		u = "https://" + strings.Replace(strings.TrimPrefix(u, "git@"), ":", "/", 1)
	}
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 && at < strings.Index(rest+"/", "/") {
			rest = rest[at+1:]
		}
		u = u[:i+3] + rest
	}
	return u
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}
