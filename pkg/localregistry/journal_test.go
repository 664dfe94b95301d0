package localregistry

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A registry whose manifests are journalled in dir, served in process.
func journalled(t *testing.T, dir string) (*journal, http.Handler) {
	t.Helper()
	inner := ggcr.New(ggcr.Logger(nilLogger()))
	j, err := openJournal(dir, inner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, &handler{inner: inner, journal: j, blobs: filepath.Join(dir, "blobs")}
}

func do(t *testing.T, h http.Handler, method, path, typ string, body []byte) int {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if typ != "" {
		req.Header.Set("Content-Type", typ)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func digestOf(b []byte) string {
	d, _, _ := v1.SHA256(bytes.NewReader(b))
	return d.String()
}

// stateOf is a journal's state without the order of writes.
func stateOf(j *journal) map[string]map[string][2]string {
	out := map[string]map[string][2]string{}
	for repo, refs := range j.state {
		out[repo] = map[string][2]string{}
		for ref, k := range refs {
			out[repo][ref] = [2]string{k.digest, k.typ}
		}
	}
	return out
}

func TestJournalReplaysEveryKindOfWrite(t *testing.T) {
	dir := t.TempDir()
	j, h := journalled(t, dir)
	img := string(types.OCIManifestSchema1)
	m := func(s string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + img + `","config":{"digest":"sha256:` + s + `"}}`)
	}
	m1, m2, m3, m4 := m("1"), m("2"), m("3"), m("4")
	idx := []byte(`{"schemaVersion":2,"mediaType":"` + string(types.OCIImageIndex) + `","manifests":[{"mediaType":"` + img + `","digest":"` + digestOf(m1) + `","size":1}]}`)
	steps := []struct {
		method, repo, ref, typ string
		body                   []byte
		want                   int
	}{
		{"PUT", "acme/a", "1", img, m1, http.StatusCreated},
		{"PUT", "acme/a", "latest", img, m1, http.StatusCreated},
		{"PUT", "acme/a", "1", img, m2, http.StatusCreated}, // moved
		{"DELETE", "acme/a", "latest", "", nil, http.StatusAccepted},
		{"PUT", "acme/a", digestOf(m3), img, m3, http.StatusCreated},
		{"DELETE", "acme/a", digestOf(m3), "", nil, http.StatusAccepted},
		{"PUT", "acme/a", "keep", img, m4, http.StatusCreated},
		{"DELETE", "acme/a", digestOf(m4), "", nil, http.StatusAccepted}, // the tag stays
		{"PUT", "acme/a", "idx", string(types.OCIImageIndex), idx, http.StatusCreated},
		{"PUT", "acme/b", "idx", string(types.OCIImageIndex), idx, http.StatusNotFound}, // its manifest is not in acme/b
		{"DELETE", "acme/b", "nothing", "", nil, http.StatusNotFound},
	}
	for _, s := range steps {
		if got := do(t, h, s.method, "/v2/"+s.repo+"/manifests/"+s.ref, s.typ, s.body); got != s.want {
			t.Fatalf("%s %s:%s = %d, want %d", s.method, s.repo, s.ref, got, s.want)
		}
	}
	want := stateOf(j)
	var journals [][]byte
	for i := range 2 {
		j2, h2 := journalled(t, dir)
		if got := stateOf(j2); !reflect.DeepEqual(got, want) {
			t.Fatalf("replay %d: state %v, want %v", i, got, want)
		}
		for ref, code := range map[string]int{"1": 200, "latest": 404, digestOf(m3): 404, "keep": 200, digestOf(m4): 404, "idx": 200, digestOf(m1): 200, digestOf(m2): 200} {
			if got := do(t, h2, "GET", "/v2/acme/a/manifests/"+ref, "", nil); got != code {
				t.Errorf("replay %d: GET acme/a:%s = %d, want %d", i, ref, got, code)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, journalFile))
		if err != nil {
			t.Fatal(err)
		}
		journals = append(journals, b)
		j2.Close()
	}
	if !bytes.Equal(journals[0], journals[1]) {
		t.Errorf("rewriting a rewritten journal changed it:\n%s\n---\n%s", journals[0], journals[1])
	}
}
