package plan

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Use is one thing a Dockerfile line asks of the build.
type Use struct {
	Name     string // image reference, context name, secret or SSH id
	Line     int    // 1-based line in the Dockerfile
	Required bool   // RUN --mount=…,required: the build fails without it
	Source   string // what named it: FROM, COPY --from, RUN --mount=from, RUN --mount=type=secret, …
}

// Uses is what a Dockerfile needs besides its build context, read with
// BuildKit's own Dockerfile parser so it agrees with the build.
type Uses struct {
	// Sources are the non-stage names in FROM, COPY --from and RUN
	// --mount=from, with ARGs expanded: images, or named contexts when
	// the image's contexts define them. scratch is left out.
	Sources []Use
	Secrets []Use
	SSH     []Use
}

// ReadDockerfile parses a Dockerfile and lists its uses; args override the
// defaults of the ARGs before the first FROM.
func ReadDockerfile(df []byte, args map[string]string) (Uses, error) {
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return Uses{}, err
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return Uses{}, err
	}
	vars := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := args[kv.Key]; ok {
				vars[kv.Key] = v
			} else if kv.Value != nil {
				vars[kv.Key] = *kv.Value
			}
		}
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	lex := shell.NewLex(res.EscapeToken)
	expand := func(s string) string {
		out, _, err := lex.ProcessWord(s, shell.EnvsFromSlice(env))
		if err != nil {
			return s
		}
		return out
	}
	var u Uses
	named := map[string]bool{} // stage names so far
	seen := map[string]bool{}
	source := func(name string, line int, what string) {
		name = expand(name)
		if name == "" || strings.EqualFold(name, "scratch") || named[strings.ToLower(name)] || seen[name] {
			return
		}
		if _, err := fmt.Sscanf(name, "%d", new(int)); err == nil && !strings.ContainsAny(name, "/:") {
			return // COPY --from=0: a stage by index
		}
		seen[name] = true
		u.Sources = append(u.Sources, Use{Name: name, Line: line, Source: what})
	}
	for _, st := range stages {
		source(st.BaseName, lineOf(st.Location), "FROM")
		if st.Name != "" {
			named[strings.ToLower(st.Name)] = true
		}
		for _, cmd := range st.Commands {
			line := lineOf(cmd.Location())
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					source(c.From, line, "COPY --from")
				}
			case *instructions.RunCommand:
				// Mount options are read when expanded, as the build does.
				if err := c.Expand(func(w string) (string, error) { return expand(w), nil }); err != nil {
					return Uses{}, fmt.Errorf("line %d: %w", line, err)
				}
				for _, m := range instructions.GetMounts(c) {
					switch m.Type {
					case instructions.MountTypeSecret:
						id := m.CacheID
						if m.Source != "" {
							id = m.Source
						}
						if id == "" && m.Target != "" {
							id = path.Base(m.Target)
						}
						u.Secrets = append(u.Secrets, Use{Name: id, Line: line, Required: m.Required, Source: "RUN --mount=type=secret"})
					case instructions.MountTypeSSH:
						id := m.CacheID
						if id == "" {
							id = "default"
						}
						u.SSH = append(u.SSH, Use{Name: id, Line: line, Required: m.Required, Source: "RUN --mount=type=ssh"})
					default:
						if m.From != "" {
							source(m.From, line, "RUN --mount=from")
						}
					}
				}
			}
		}
	}
	return u, nil
}

func lineOf(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

// FromRefs returns the image references a Dockerfile's FROM, COPY --from
// and RUN --mount=from lines name, leaving out scratch and earlier stages,
// with ${ARG}s expanded from args and the ARG defaults before the first
// FROM. A Dockerfile BuildKit cannot parse names nothing.
func FromRefs(dockerfile []byte, args map[string]string) []string {
	u, err := ReadDockerfile(dockerfile, args)
	if err != nil {
		return nil
	}
	var refs []string
	for _, s := range u.Sources {
		refs = append(refs, s.Name)
	}
	sort.Strings(refs)
	return refs
}

// ids lists the distinct names of uses, sorted.
func ids(us []Use) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range us {
		if !seen[u.Name] {
			seen[u.Name] = true
			out = append(out, u.Name)
		}
	}
	sort.Strings(out)
	return out
}
