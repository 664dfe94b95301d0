// Package githubtest is an httptest server answering the few GitHub REST
// endpoints Hoist uses exactly as GitHub documents them: status codes,
// and error bodies with message and documentation_url. GitHub's API is the
// one component tests cannot run for real, so it is the one fake Hoist
// allows; its answers follow https://docs.github.com/rest (git/refs and
// releases pages).
package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Release is a GitHub release as stored by the server.
type Release struct {
	ID              int64     `json:"id"`
	TagName         string    `json:"tag_name"`
	TargetCommitish string    `json:"target_commitish"`
	Name            string    `json:"name"`
	Body            string    `json:"body"`
	Draft           bool      `json:"draft"`
	Prerelease      bool      `json:"prerelease"`
	HTMLURL         string    `json:"html_url"`
	CreatedAt       time.Time `json:"created_at"`
}

// Server is a fake of one repository on GitHub.
type Server struct {
	*httptest.Server
	Repo  string // OWNER/NAME
	Token string // the only token accepted
	// After, when set, is called after each request is answered (without
	// the server's lock held), to play another client acting in between.
	After func(method, path string)
	// ReadOnly makes the token one that can read the repository but not
	// write to it: GET /repos/OWNER/NAME says permissions.push false, and
	// writes answer 403 as GitHub does.
	ReadOnly bool

	mu       sync.Mutex
	refs     map[string]string // refs/tags/X → commit sha, or tag object sha
	tagObjs  map[string]string // annotated tag object sha → commit sha
	releases map[int64]*Release
	nextID   int64
	calls    []string
}

// New starts a server for repo that accepts token, closed with the test.
func New(t testing.TB, repo, token string) *Server {
	s := &Server{Repo: repo, Token: token, refs: map[string]string{}, tagObjs: map[string]string{}, releases: map[int64]*Release{}, nextID: 1}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Ref returns where a ref points.
func (s *Server) Ref(ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha, ok := s.refs[ref]
	return sha, ok
}

// SetRef creates or moves a ref, as a push by someone else would.
func (s *Server) SetRef(ref, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs[ref] = sha
}

// SetAnnotatedTag creates refs/tags/name pointing at an annotated tag
// object tagSHA, which points at commit.
func (s *Server) SetAnnotatedTag(name, tagSHA, commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs["refs/tags/"+name] = tagSHA
	s.tagObjs[tagSHA] = commit
}

// Releases returns the stored releases by tag.
func (s *Server) Releases() map[string]Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Release{}
	for _, r := range s.releases {
		out[r.TagName] = *r
	}
	return out
}

// Calls lists the requests served, "METHOD /path".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

type apiErr struct {
	Message          string           `json:"message"`
	Errors           []map[string]any `json:"errors,omitempty"`
	DocumentationURL string           `json:"documentation_url"`
	Status           string           `json:"status"`
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client sees a cut answer
}

func fail(w http.ResponseWriter, status int, msg, doc string) {
	reply(w, status, apiErr{Message: msg, DocumentationURL: doc, Status: strconv.Itoa(status)})
}

const (
	docRefs     = "https://docs.github.com/rest/git/refs"
	docReleases = "https://docs.github.com/rest/releases/releases"
)

var sha40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r)
	if s.After != nil {
		s.After(r.Method, r.URL.Path)
	}
}

// CreateRelease stores a release as another client's POST would.
func (s *Server) CreateRelease(tag, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs["refs/tags/"+tag] = sha
	s.releases[s.nextID] = &Release{ID: s.nextID, TagName: tag, TargetCommitish: sha, Name: tag, CreatedAt: time.Now().UTC()}
	s.nextID++
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	write := r.Method != http.MethodGet
	switch auth := r.Header.Get("Authorization"); {
	case auth == "" && write:
		fail(w, http.StatusUnauthorized, "Requires authentication", "https://docs.github.com/rest")
		return
	case auth == "":
		// A private repository is invisible without a token.
		fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
		return
	case auth != "Bearer "+s.Token:
		fail(w, http.StatusUnauthorized, "Bad credentials", "https://docs.github.com/rest")
		return
	}
	if write && s.ReadOnly {
		fail(w, http.StatusForbidden, "Resource not accessible by personal access token", "https://docs.github.com/rest")
		return
	}
	prefix := "/repos/" + s.Repo + "/"
	if r.Method == http.MethodGet && r.URL.Path == strings.TrimSuffix(prefix, "/") {
		// Get a repository: the caller's permissions come with it.
		reply(w, http.StatusOK, map[string]any{"full_name": s.Repo, "private": true,
			"permissions": map[string]bool{"admin": false, "maintain": false, "push": !s.ReadOnly, "triage": true, "pull": true}})
		return
	}
	if !strings.HasPrefix(r.URL.Path, prefix) {
		fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, prefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && p == "git/refs":
		var in struct{ Ref, SHA string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.HasPrefix(in.Ref, "refs/") || strings.Count(in.Ref, "/") < 2 {
			fail(w, http.StatusUnprocessableEntity, "Reference name is not valid", docRefs+"#create-a-reference")
			return
		}
		if !sha40.MatchString(in.SHA) {
			fail(w, http.StatusUnprocessableEntity, "Object does not exist", docRefs+"#create-a-reference")
			return
		}
		if _, ok := s.refs[in.Ref]; ok {
			fail(w, http.StatusUnprocessableEntity, "Reference already exists", docRefs+"#create-a-reference")
			return
		}
		s.refs[in.Ref] = in.SHA
		reply(w, http.StatusCreated, s.refJSON(in.Ref))
	case r.Method == http.MethodGet && strings.HasPrefix(p, "git/ref/"):
		ref := "refs/" + strings.TrimPrefix(p, "git/ref/")
		if _, ok := s.refs[ref]; !ok {
			fail(w, http.StatusNotFound, "Not Found", docRefs+"#get-a-reference")
			return
		}
		reply(w, http.StatusOK, s.refJSON(ref))
	case r.Method == http.MethodGet && strings.HasPrefix(p, "git/tags/"):
		sha := strings.TrimPrefix(p, "git/tags/")
		commit, ok := s.tagObjs[sha]
		if !ok {
			fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/git/tags#get-a-tag")
			return
		}
		reply(w, http.StatusOK, map[string]any{"sha": sha, "tag": "annotated", "message": "", "object": map[string]any{"sha": commit, "type": "commit"}})
	case r.Method == http.MethodGet && strings.HasPrefix(p, "git/matching-refs/"):
		pre := "refs/" + strings.TrimPrefix(p, "git/matching-refs/")
		var names []string
		for ref := range s.refs {
			if strings.HasPrefix(ref, pre) {
				names = append(names, ref)
			}
		}
		sort.Strings(names)
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if per <= 0 || per > 100 {
			per = 30
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page <= 0 {
			page = 1
		}
		out := []map[string]any{}
		for i := (page - 1) * per; i < len(names) && i < page*per; i++ {
			out = append(out, s.refJSON(names[i]))
		}
		reply(w, http.StatusOK, out)
	case r.Method == http.MethodGet && strings.HasPrefix(p, "releases/tags/"):
		tag := strings.TrimPrefix(p, "releases/tags/")
		for _, rel := range s.releases {
			if rel.TagName == tag {
				reply(w, http.StatusOK, rel)
				return
			}
		}
		fail(w, http.StatusNotFound, "Not Found", docReleases+"#get-a-release-by-tag-name")
	case r.Method == http.MethodPost && p == "releases":
		var in Release
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.TagName == "" {
			reply(w, http.StatusUnprocessableEntity, apiErr{Message: "Validation Failed", Errors: []map[string]any{{"resource": "Release", "code": "missing_field", "field": "tag_name"}}, DocumentationURL: docReleases + "#create-a-release", Status: "422"})
			return
		}
		for _, rel := range s.releases {
			if rel.TagName == in.TagName {
				reply(w, http.StatusUnprocessableEntity, apiErr{Message: "Validation Failed", Errors: []map[string]any{{"resource": "Release", "code": "already_exists", "field": "tag_name"}}, DocumentationURL: docReleases + "#create-a-release", Status: "422"})
				return
			}
		}
		if _, ok := s.refs["refs/tags/"+in.TagName]; !ok {
			// GitHub creates the tag from target_commitish when missing.
			if !sha40.MatchString(in.TargetCommitish) {
				reply(w, http.StatusUnprocessableEntity, apiErr{Message: "Validation Failed", Errors: []map[string]any{{"resource": "Release", "code": "invalid", "field": "target_commitish"}}, DocumentationURL: docReleases + "#create-a-release", Status: "422"})
				return
			}
			s.refs["refs/tags/"+in.TagName] = in.TargetCommitish
		}
		in.ID = s.nextID
		s.nextID++
		in.CreatedAt = time.Now().UTC()
		in.HTMLURL = fmt.Sprintf("https://github.com/%s/releases/tag/%s", s.Repo, in.TagName)
		if in.Name == "" {
			in.Name = in.TagName
		}
		s.releases[in.ID] = &in
		reply(w, http.StatusCreated, in)
	case r.Method == http.MethodPatch && strings.HasPrefix(p, "releases/"):
		id, _ := strconv.ParseInt(strings.TrimPrefix(p, "releases/"), 10, 64)
		rel, ok := s.releases[id]
		if !ok {
			fail(w, http.StatusNotFound, "Not Found", docReleases+"#update-a-release")
			return
		}
		var in map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			fail(w, http.StatusBadRequest, "Problems parsing JSON", docReleases+"#update-a-release")
			return
		}
		b, _ := json.Marshal(rel)
		var cur map[string]json.RawMessage
		_ = json.Unmarshal(b, &cur) // b was just marshalled
		for k, v := range in {
			cur[k] = v
		}
		b, _ = json.Marshal(cur)
		var upd Release
		if err := json.Unmarshal(b, &upd); err != nil {
			fail(w, http.StatusUnprocessableEntity, "Validation Failed", docReleases+"#update-a-release")
			return
		}
		upd.ID = rel.ID
		*rel = upd
		reply(w, http.StatusOK, rel)
	default:
		fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
	}
}

func (s *Server) refJSON(ref string) map[string]any {
	return map[string]any{
		"ref":     ref,
		"node_id": "REF_" + ref,
		"url":     s.URL + "/repos/" + s.Repo + "/git/" + ref,
		"object":  s.objectJSON(s.refs[ref]),
	}
}

func (s *Server) objectJSON(sha string) map[string]any {
	if _, ok := s.tagObjs[sha]; ok {
		return map[string]any{"type": "tag", "sha": sha, "url": s.URL + "/repos/" + s.Repo + "/git/tags/" + sha}
	}
	return map[string]any{"type": "commit", "sha": sha, "url": s.URL + "/repos/" + s.Repo + "/git/commits/" + sha}
}
