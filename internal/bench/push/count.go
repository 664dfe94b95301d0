package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// countingTransport counts the requests a client sends, by kind (method
// and what the path names), so a run can say where its requests go.
type countingTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
	// trace, when set, gets one line per request: start and end in ms
	// since t0, kind and path.
	trace []string
	t0    time.Time
	keep  bool
}

func newCounting(inner http.RoundTripper) *countingTransport {
	return &countingTransport{inner: inner, n: map[string]int{}}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	k := r.Method + " " + requestKind(r.URL.Path)
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
	if !c.keep {
		return c.inner.RoundTrip(r)
	}
	start := time.Since(c.t0)
	resp, err := c.inner.RoundTrip(r)
	end := time.Since(c.t0)
	c.mu.Lock()
	c.trace = append(c.trace, fmt.Sprintf("%7.1f %7.1f %-26s %s", float64(start.Microseconds())/1000, float64(end.Microseconds())/1000, k, r.URL.Path))
	c.mu.Unlock()
	return resp, err
}

// requestKind names what a registry API path addresses.
func requestKind(p string) string {
	switch {
	case p == "/v2/" || p == "/v2":
		return "ping"
	case strings.Contains(p, "/blobs/uploads/"):
		if strings.HasSuffix(p, "/blobs/uploads/") {
			return "upload start"
		}
		return "upload session"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	case strings.Contains(p, "/referrers/"):
		return "referrers"
	case strings.HasSuffix(p, "/tags/list"):
		return "tag list"
	case strings.Contains(p, "/manifests/"):
		ref := p[strings.LastIndex(p, "/")+1:]
		switch {
		case strings.HasPrefix(ref, "sha256:"):
			return "manifest by digest"
		case strings.HasPrefix(ref, "sha256-") && strings.HasSuffix(ref, ".att"):
			return "manifest .att tag"
		case strings.HasPrefix(ref, "sha256-") && strings.HasSuffix(ref, ".sig"):
			return "manifest .sig tag"
		case strings.HasPrefix(ref, "sha256-"):
			return "manifest fallback tag"
		}
		return "manifest by tag"
	}
	return "other"
}

func (c *countingTransport) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.n
	c.n = map[string]int{}
	return out
}

// countTable prints the counts of a run without and with attestations side
// by side, one row per kind, and the totals.
func countTable(plain, with map[string]int) string {
	kinds := map[string]bool{}
	for k := range plain {
		kinds[k] = true
	}
	for k := range with {
		kinds[k] = true
	}
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var sb strings.Builder
	sb.WriteString("| request | Push | with attestations | added |\n|---|---|---|---|\n")
	var tp, tw int
	for _, k := range ks {
		fmt.Fprintf(&sb, "| %s | %d | %d | %d |\n", k, plain[k], with[k], with[k]-plain[k])
		tp, tw = tp+plain[k], tw+with[k]
	}
	fmt.Fprintf(&sb, "| total | %d | %d | %d |\n", tp, tw, tw-tp)
	return sb.String()
}
