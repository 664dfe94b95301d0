package github

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewRefusesBadSettings(t *testing.T) {
	for _, tt := range []struct{ api, repo, wantIn string }{
		{api: "ftp://x", repo: "a/b", wantIn: "not an http(s) URL"},
		{api: "", repo: "a", wantIn: "not OWNER/NAME"},
		{api: "", repo: "a/b/c", wantIn: "not OWNER/NAME"},
		{api: "", repo: "/b", wantIn: "not OWNER/NAME"},
	} {
		if _, err := New(tt.api, tt.repo, "t"); err == nil || !strings.Contains(err.Error(), tt.wantIn) {
			t.Errorf("New(%q, %q) = %v, want %q", tt.api, tt.repo, err, tt.wantIn)
		}
	}
}

// TestDoSendsWhatGitHubExpects: base path kept (GitHub Enterprise's
// /api/v3), headers set, token only in the Authorization header, and a
// documented error body turned into one line with guidance.
func TestDoSendsWhatGitHubExpects(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/git/refs#create-a-reference","status":"403"}`))
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/api/v3/", "acme/widgets", "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), http.MethodPost, "./git/refs", map[string]string{"ref": "refs/tags/x"}, nil)
	if got.URL.Path != "/api/v3/repos/acme/widgets/git/refs" || got.Header.Get("Authorization") != "Bearer secret-token" ||
		got.Header.Get("Accept") != "application/vnd.github+json" || got.Header.Get("X-GitHub-Api-Version") == "" {
		t.Fatalf("request %s %v", got.URL.Path, got.Header)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.DocumentationURL == "" || StatusOf(err) != 403 {
		t.Fatalf("err = %#v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "403 Resource not accessible by integration to POST /repos/acme/widgets/git/refs") || !strings.Contains(msg, "contents: write") || strings.Contains(msg, "secret-token") || strings.Contains(msg, "\n") {
		t.Fatalf("message %q", msg)
	}
}
