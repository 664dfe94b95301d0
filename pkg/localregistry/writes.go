package localregistry

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Write is one completed write the registry's access log shows: a blob
// upload (or mount) into a repository, or a manifest put under a
// reference (tag or digest).
type Write struct {
	Blob bool   // a blob; otherwise a manifest
	Repo string // repository path, e.g. team/demo
	Ref  string // the blob's digest, or the manifest's tag or digest
}

func (w Write) String() string {
	if w.Blob {
		return fmt.Sprintf("blob %s@%s", w.Repo, w.Ref)
	}
	return fmt.Sprintf("manifest %s:%s", w.Repo, w.Ref)
}

// Writes reads the completed writes of the registry so far, in order.
func (s *Server) Writes() ([]Write, error) {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return nil, fmt.Errorf("reading the registry log: %w", err)
	}
	return ParseWrites(b), nil
}

// ParseWrites lists the completed writes (answered 201) of a distribution
// registry access log.
func ParseWrites(b []byte) []Write {
	var out []Write
	for _, e := range accessLog(b) {
		req, status := e.req, e.status
		if len(req) < 2 || len(status) < 1 || status[0] != "201" {
			continue
		}
		u, err := url.Parse(req[1])
		if err != nil || !strings.HasPrefix(u.Path, "/v2/") {
			continue
		}
		p := strings.TrimPrefix(u.Path, "/v2/")
		switch i := strings.Index(p, "/blobs/uploads/"); {
		case i >= 0 && (req[0] == "PUT" || req[0] == "POST"):
			d := u.Query().Get("digest")
			if d == "" {
				d = u.Query().Get("mount")
			}
			if d != "" {
				out = append(out, Write{Blob: true, Repo: p[:i], Ref: d})
			}
		case req[0] == "PUT" && strings.Contains(p, "/manifests/"):
			i := strings.LastIndex(p, "/manifests/")
			out = append(out, Write{Repo: p[:i], Ref: p[i+len("/manifests/"):]})
		}
	}
	return out
}
