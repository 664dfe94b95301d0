package localregistry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/lock"
)

// go-containerregistry's registry keeps manifests and tags in memory. The
// journal makes them outlive the process: each manifest's bytes are stored
// by digest under data/manifests/, and each manifest write the registry
// accepts is appended to data/manifests.journal before the client hears of
// it. A new process replays the journal into its registry, then rewrites it
// as the shortest list of writes that gives the same state.
const (
	journalFile  = "manifests.journal"
	manifestsDir = "manifests"
	// maxManifest is the distribution registry's limit too.
	maxManifest = 4 << 20
)

// entry is one line of the journal.
type entry struct {
	Op     string `json:"op"` // put or delete
	Repo   string `json:"repo"`
	Ref    string `json:"ref"` // a tag or a digest
	Type   string `json:"type,omitempty"`
	Digest string `json:"digest,omitempty"` // put: the manifest's digest
}

// key is what one reference of a repository names, and when it was set,
// so the rewritten journal keeps an index after the manifests it lists.
type key struct {
	digest, typ string
	seq         int
}

type journal struct {
	dir   string // the data folder
	inner http.Handler
	mu    sync.Mutex // one order for the registry's writes and the journal's lines
	f     *os.File
	state map[string]map[string]key // repository → reference → manifest
	seq   int
}

// openJournal replays dir's journal into inner, rewrites it and opens it
// for appending.
func openJournal(dir string, inner http.Handler) (*journal, error) {
	j := &journal{dir: dir, inner: inner, state: map[string]map[string]key{}}
	if err := os.MkdirAll(filepath.Join(dir, manifestsDir), 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, journalFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the manifest journal: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e entry
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &e) != nil {
			continue // a line cut short by a kill in mid-write
		}
		j.replay(e)
	}
	if err := lock.WriteFileAtomic(path, j.compact()); err != nil {
		return nil, fmt.Errorf("rewriting the manifest journal: %w", err)
	}
	j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the manifest journal: %w", err)
	}
	return j, nil
}

func (j *journal) Close() error { return j.f.Close() }

func (j *journal) manifestFile(d v1.Hash) string {
	return filepath.Join(j.dir, manifestsDir, d.Algorithm, d.Hex)
}

// replay applies one journalled write to the registry; one the registry
// refuses (as it did the first time, e.g. an index whose manifests had gone)
// is dropped.
func (j *journal) replay(e entry) {
	var body []byte
	method := http.MethodDelete
	if e.Op == "put" {
		d, err := v1.NewHash(e.Digest)
		if err != nil {
			return
		}
		if body, err = os.ReadFile(j.manifestFile(d)); err != nil {
			return
		}
		method = http.MethodPut
	} else if e.Op != "delete" {
		return
	}
	req, err := http.NewRequest(method, "/v2/"+e.Repo+"/manifests/"+e.Ref, bytes.NewReader(body))
	if err != nil {
		return
	}
	if e.Type != "" {
		req.Header.Set("Content-Type", e.Type)
	}
	rec := httptest.NewRecorder()
	j.inner.ServeHTTP(rec, req)
	if rec.Code/100 == 2 {
		j.apply(e)
	}
}

// apply records a write the registry accepted, with the registry's own
// rules: a put names the manifest by its reference and by its digest; a
// delete removes that one reference.
func (j *journal) apply(e entry) {
	j.seq++
	refs := j.state[e.Repo]
	if refs == nil {
		refs = map[string]key{}
		j.state[e.Repo] = refs
	}
	if e.Op == "delete" {
		delete(refs, e.Ref)
		return
	}
	k := key{digest: e.Digest, typ: e.Type, seq: j.seq}
	if old, ok := refs[e.Digest]; ok {
		k.seq = old.seq
	}
	refs[e.Digest] = k
	if e.Ref != e.Digest {
		refs[e.Ref] = key{digest: e.Digest, typ: e.Type, seq: j.seq}
	}
}

// compact returns the journal that rebuilds the current state: the puts in
// the order they were first made, then deletes of the digests those puts
// name that the state no longer has.
func (j *journal) compact() []byte {
	type item struct {
		repo, ref string
		k         key
	}
	var items []item
	for repo, refs := range j.state {
		for ref, k := range refs {
			items = append(items, item{repo, ref, k})
		}
	}
	sort.Slice(items, func(a, b int) bool {
		x, y := items[a], items[b]
		if x.k.seq != y.k.seq {
			return x.k.seq < y.k.seq
		}
		if x.repo != y.repo {
			return x.repo < y.repo
		}
		return x.ref < y.ref
	})
	var out bytes.Buffer
	line := func(e entry) {
		b, _ := json.Marshal(e)
		out.Write(append(b, '\n'))
	}
	var extra []entry
	seen := map[[2]string]bool{}
	for _, it := range items {
		line(entry{Op: "put", Repo: it.repo, Ref: it.ref, Type: it.k.typ, Digest: it.k.digest})
		if _, ok := j.state[it.repo][it.k.digest]; !ok && !seen[[2]string{it.repo, it.k.digest}] {
			seen[[2]string{it.repo, it.k.digest}] = true
			extra = append(extra, entry{Op: "delete", Repo: it.repo, Ref: it.k.digest})
		}
	}
	for _, e := range extra {
		line(e)
	}
	return out.Bytes()
}

// serve passes a manifest write to the registry and journals it when the
// registry accepts it, before the client hears of it.
func (j *journal) serve(w http.ResponseWriter, r *http.Request, repo, ref string) {
	e := entry{Op: "delete", Repo: repo, Ref: ref}
	if r.Method == http.MethodPut {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "reading the manifest: "+err.Error())
			return
		}
		if len(body) > maxManifest {
			writeError(w, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", "manifest larger than 4 MiB")
			return
		}
		d, _, _ := v1.SHA256(bytes.NewReader(body))
		if err := j.save(d, body); err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", "storing the manifest: "+err.Error())
			return
		}
		e = entry{Op: "put", Repo: repo, Ref: ref, Type: r.Header.Get("Content-Type"), Digest: d.String()}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	rec := httptest.NewRecorder()
	j.inner.ServeHTTP(rec, r)
	if rec.Code/100 == 2 {
		// No fsync: a returned write survives the process being killed, and
		// the blobs beside it are not synced either.
		b, _ := json.Marshal(e)
		if _, err := j.f.Write(append(b, '\n')); err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", "journalling the manifest: "+err.Error())
			return
		}
		j.apply(e)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// save stores a manifest's bytes by digest, once.
func (j *journal) save(d v1.Hash, body []byte) error {
	p := j.manifestFile(d)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return lock.WriteFileAtomic(p, body)
}

// writeError answers in the registry API's error format.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
