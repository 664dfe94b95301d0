package release

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/gitref"
	"github.com/hoistci/hoist/pkg/lock"
)

// Ref is one pushed image reference in the notes.
type Ref struct {
	Image  string   // image name, e.g. demo-cpu-py3.12
	Repo   string   // HOST/REPOSITORY/NAME
	Tags   []string // tags pointing at Digest: the version first
	Digest string
}

// Refs picks, for each image, the references pushed with tag version and
// the other tags recorded at the same digest (floating tags such as staging
// or latest). Images not pushed as version are left out.
func Refs(imgs []lock.Image, version string) []Ref {
	var out []Ref
	for _, img := range imgs {
		var r *Ref
		for _, p := range img.Pushed {
			repo, tag, _ := splitRef(p.Ref)
			if tag == version && p.Digest != "" {
				r = &Ref{Image: img.Name, Repo: repo, Digest: p.Digest, Tags: []string{version}}
				break
			}
		}
		if r == nil {
			continue
		}
		seen := map[string]bool{version: true}
		var more []string
		for _, p := range img.Pushed {
			repo, tag, _ := splitRef(p.Ref)
			if repo == r.Repo && tag != "" && p.Digest == r.Digest && !seen[tag] {
				seen[tag] = true
				more = append(more, tag)
			}
		}
		sort.Strings(more)
		r.Tags = append(r.Tags, more...)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out
}

// splitRef splits HOST/REPO:TAG or HOST/REPO@DIGEST.
func splitRef(ref string) (repo, tag, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], "", ref[i+1:]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:], ""
	}
	return ref, "", ""
}

// History is what happened since the previous release, for the notes.
type History struct {
	Previous string // the previous release's tag; "" for a first release
	Current  string // this release's tag
	Compare  string // the repository's web URL, for a compare link; "" for none
	Commits  []gitref.Commit
}

// history reads the commits since the highest release tag below this one
// that HEAD contains.
func (r *Run) history(ctx context.Context, current string) *History {
	h := &History{Current: current}
	if r.o.GitHub != nil {
		h.Compare = r.o.GitHub.WebURL()
	}
	tags, err := r.o.Git.TagsMerged(ctx)
	if err != nil {
		return h
	}
	var best *semver.Version
	for _, t := range tags {
		v, err := semver.StrictNewVersion(strings.TrimPrefix(t, "v"))
		if err != nil || v.Prerelease() != "" || !v.LessThan(mustVersion(r.Base)) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, h.Previous = v, t
		}
	}
	h.Commits, _ = r.o.Git.Log(ctx, h.Previous, r.Commit)
	return h
}

// Notes is a release body: the changelog, the commits since the previous
// release with their authors, the contributors and a compare link, then
// the images with their digests and pull commands ready to paste, by tag
// and by digest.
func Notes(changelog, version string, refs []Ref, h *History) string {
	var b strings.Builder
	if strings.TrimSpace(changelog) == "" {
		fmt.Fprintf(&b, "_No release notes were written for %s._\n", version)
	} else {
		b.WriteString(strings.TrimSpace(changelog) + "\n")
	}
	writeHistory(&b, h)
	b.WriteString("\n## Images\n\n")
	if len(refs) == 0 {
		fmt.Fprintf(&b, "No image references were recorded for %s.\n", version)
		return b.String()
	}
	b.WriteString("| Image | Tags | Digest |\n|---|---|---|\n")
	for _, r := range refs {
		tags := make([]string, len(r.Tags))
		for i, t := range r.Tags {
			tags[i] = "`" + t + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", r.Image, strings.Join(tags, ", "), r.Digest)
	}
	b.WriteString("\nPull by tag, or by digest for exactly the bytes that were tested:\n\n```sh\n")
	for _, r := range refs {
		fmt.Fprintf(&b, "docker pull %s:%s\n", r.Repo, r.Tags[0])
	}
	b.WriteString("\n")
	for _, r := range refs {
		fmt.Fprintf(&b, "docker pull %s@%s\n", r.Repo, r.Digest)
	}
	b.WriteString("```\n")
	return b.String()
}

func writeHistory(b *strings.Builder, h *History) {
	if h == nil || len(h.Commits) == 0 {
		return
	}
	since := "since " + h.Previous
	if h.Previous == "" {
		since = "in this first release"
	}
	fmt.Fprintf(b, "\n## Commits %s\n\n", since)
	seen := map[string]bool{}
	var authors []string
	for _, c := range h.Commits {
		fmt.Fprintf(b, "- %s (%s, %s)\n", c.Subject, c.SHA[:min(7, len(c.SHA))], c.Author)
		if !seen[c.Author] {
			seen[c.Author] = true
			authors = append(authors, c.Author)
		}
	}
	sort.Strings(authors)
	fmt.Fprintf(b, "\n## Contributors\n\n%s\n", strings.Join(authors, ", "))
	if h.Compare != "" && h.Previous != "" {
		fmt.Fprintf(b, "\n**Full changelog:** %s/compare/%s...%s\n", h.Compare, h.Previous, h.Current)
	}
}
