// Package faultproxy is a reverse proxy on 127.0.0.1 that injects faults in
// front of a real registry: error bursts, dropped connections and slow
// answers, chosen per request by a rule, so tests prove retries and
// all-or-nothing tagging against the real thing.
package faultproxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Fault is what happens to one request.
type Fault struct {
	Status int           // answer this status instead of forwarding
	Body   string        // with Status: the answer's JSON (default: an UNAVAILABLE error)
	Reset  bool          // drop the connection (TCP reset) without answering
	Delay  time.Duration // wait this long, then forward
	// Hold, when set, keeps the request waiting until the channel is
	// closed (e.g. while the test kills the client), then drops it.
	Hold <-chan struct{}
}

// Rule chooses the fault for the n-th request (from 1); the zero Fault
// forwards the request as the rule leaves it (a rule may rewrite it, e.g.
// to play a registry that declines what the client asks).
type Rule func(n int, r *http.Request) Fault

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	Host string // 127.0.0.1:PORT
	srv  *httptest.Server

	mu     sync.Mutex
	rule   Rule
	n      int
	faults int
}

// New starts a proxy to the registry at host (HOST:PORT, plain HTTP).
func New(host string, rule Rule) *Proxy {
	target := &url.URL{Scheme: "http", Host: host}
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &Proxy{rule: rule}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.n++
		f := Fault{}
		if p.rule != nil {
			f = p.rule(p.n, r)
		}
		if f != (Fault{}) {
			p.faults++
		}
		p.mu.Unlock()
		if f.Hold != nil {
			select {
			case <-f.Hold:
			case <-r.Context().Done():
			}
			f.Reset = true
		}
		switch {
		case f.Reset:
			hj, ok := w.(http.Hijacker)
			if !ok {
				panic("faultproxy: cannot hijack")
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // a reset, not a clean close
				}
				_ = conn.Close()
			}
			return
		case f.Status != 0:
			body := f.Body
			if body == "" {
				body = `{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}`
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte(body))
			return
		case f.Delay > 0:
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

// SetRule replaces the rule (nil: no faults).
func (p *Proxy) SetRule(rule Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = rule
}

// Faults returns how many faults were injected.
func (p *Proxy) Faults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }
