package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/readlimit"
)

// session checks what img's Dockerfile asks of the build (secrets, SSH
// agents, named contexts) against what the config gives, and returns a
// request carrying exactly that. Every refusal is one line naming the
// image, the Dockerfile line and the fix.
func session(ctx context.Context, e Engine, root string, img plan.Image, uses plan.Uses, o Options) (engine.BuildRequest, error) {
	req := engine.BuildRequest{Contexts: img.Contexts}
	df := img.Dockerfile
	if rel, err := filepath.Rel(root, df); err == nil && root != "" && !strings.HasPrefix(rel, "..") {
		df = rel
	}
	at := func(line int) string { return fmt.Sprintf("image %s: %s:%d", img.Name, df, line) }
	for _, u := range uses.Secrets {
		s, ok := o.Secrets[u.Name]
		if !ok {
			return req, fmt.Errorf("%s: %s uses secret %q, which hoist.yaml does not define: add secrets: {%s: {env: VARIABLE}} (or {file: PATH}) to hoist.yaml",
				at(u.Line), u.Source, u.Name, u.Name)
		}
		if s.Withheld != "" {
			if u.Required {
				return req, fmt.Errorf("%s: %s requires secret %q (%s), but %s", at(u.Line), u.Source, u.Name, s.Where, s.Withheld)
			}
			continue // an optional mount builds without it, as BuildKit does
		}
		if s.File != "" {
			if err := readlimit.Check(s.File, "secret file", readlimit.Secret); errors.Is(err, fs.ErrNotExist) {
				return req, fmt.Errorf("%s: secret %q reads %s, which does not exist: create it, or fix secrets.%s.file (%s)",
					at(u.Line), u.Name, s.File, u.Name, s.Where)
			} else if err != nil {
				return req, fmt.Errorf("%s: secret %q: %w (secrets.%s.file, %s)", at(u.Line), u.Name, err, u.Name, s.Where)
			}
		}
		if req.Secrets == nil {
			req.Secrets = map[string]engine.Secret{}
		}
		req.Secrets[u.Name] = engine.Secret{Value: s.Value, File: s.File}
	}
	for _, u := range uses.SSH {
		s, ok := o.SSH[u.Name]
		if !ok {
			return req, fmt.Errorf("%s: %s uses SSH agent %q, which hoist.yaml does not define: add ssh: {%s: } (the agent at SSH_AUTH_SOCK) or ssh: {%s: {keys: [PATH]}} to hoist.yaml",
				at(u.Line), u.Source, u.Name, u.Name, u.Name)
		}
		paths := s.Keys
		if len(paths) == 0 {
			if s.Socket == "" {
				return req, fmt.Errorf("%s: %s needs SSH agent %q (%s), but SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add your key, or set ssh.%s.keys",
					at(u.Line), u.Source, u.Name, s.Where, u.Name)
			}
			if st, err := os.Stat(s.Socket); err != nil || st.Mode()&os.ModeSocket == 0 {
				return req, fmt.Errorf("%s: %s needs SSH agent %q, but its socket %s (%s) does not exist: start ssh-agent (eval $(ssh-agent); ssh-add), or fix ssh.%s (%s)",
					at(u.Line), u.Source, u.Name, s.Socket, s.From, u.Name, s.Where)
			}
			paths = []string{s.Socket}
		}
		if req.SSH == nil {
			req.SSH = map[string][]string{}
		}
		req.SSH[u.Name] = paths
	}
	if err := checkContexts(ctx, e, img, df, uses, at); err != nil {
		return req, err
	}
	if o.RemoteBuildKit {
		req.EngineImages = engineImages(ctx, e, img, uses)
	}
	return req, nil
}

// engineImages are the images in the engine that img's Dockerfile names,
// directly or through a docker-image:// context: a remote builder gets
// exactly these bytes (the ones the inputs hash resolved), as the engine's
// BuildKit would use them. A name the engine lacks is the remote builder's
// to pull.
func engineImages(ctx context.Context, e Engine, img plan.Image, uses plan.Uses) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range uses.Sources {
		name := u.Name
		if src, ok := img.Contexts[name]; ok {
			if !strings.HasPrefix(src, config.ImageContextPrefix) {
				continue // a folder
			}
			name = strings.TrimPrefix(src, config.ImageContextPrefix)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		if _, err := e.Inspect(ctx, name); err == nil {
			out = append(out, name)
		}
	}
	return out
}

// checkContexts refuses a context hoist.yaml names that the Dockerfile
// never uses, and a bare name the Dockerfile uses that is neither a stage,
// nor a context, nor an image, when the image has contexts: both are the
// same typo seen from either side.
func checkContexts(ctx context.Context, e Engine, img plan.Image, df string, uses plan.Uses, at func(int) string) error {
	if len(img.Contexts) == 0 {
		return nil
	}
	used := map[string]bool{}
	var names []string
	for _, u := range uses.Sources {
		used[u.Name] = true
		names = append(names, u.Name)
	}
	defined := make([]string, 0, len(img.Contexts))
	for name := range img.Contexts {
		defined = append(defined, name)
	}
	sort.Strings(defined)
	for _, u := range uses.Sources {
		if _, ok := img.Contexts[u.Name]; ok || strings.ContainsAny(u.Name, "/:.@") {
			continue
		}
		if _, err := e.Inspect(ctx, u.Name); err == nil {
			continue
		}
		return fmt.Errorf("%s: %s %s names no stage, no context and no image here: the image's contexts are %s; fix the name in the Dockerfile or in hoist.yaml",
			at(u.Line), u.Source, u.Name, strings.Join(defined, ", "))
	}
	for _, name := range defined {
		if !used[name] {
			return fmt.Errorf("image %s: context %q in hoist.yaml is named by no FROM, COPY --from or RUN --mount=from in %s (they name: %s): fix the name",
				img.Name, name, df, strings.Join(names, ", "))
		}
	}
	return nil
}

// networks turns an image's network setting into the one its RUN steps get,
// checking once per run that the engine has the default network BuildKit
// would use, and saying in one line what is used instead when it has not.
type networks struct {
	e     Engine
	check bool
	pr    *printer

	once   sync.Once
	bridge bool
	err    error
}

func (n *networks) resolve(ctx context.Context, want string) (string, error) {
	if want == "" {
		want = config.NetworkDefault
	}
	if want != config.NetworkDefault || !n.check {
		return want, nil
	}
	n.once.Do(func() {
		n.bridge, n.err = n.e.HasDefaultBridge(ctx)
		if n.err == nil && !n.bridge {
			n.pr.printf("  note: this engine has no default bridge network (dockerd --bridge=none), so RUN steps get network none; set network: host in hoist.yaml for steps that must reach a service\n")
		}
	})
	if n.err != nil {
		return "", n.err
	}
	if !n.bridge {
		return config.NetworkNone, nil
	}
	return want, nil
}
