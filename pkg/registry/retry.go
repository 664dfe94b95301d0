package registry

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// retrying retries one HTTP exchange with backoff when the registry answers
// 408, 429 or 5xx or the connection drops, as long as the request can be
// sent again (no body, or a body it can rewind). It sits below
// go-containerregistry, so even the /v2/ ping and token exchanges are
// retried; go-containerregistry itself restarts whole blob uploads.
type retrying struct {
	inner   http.RoundTripper
	backoff remote.Backoff
}

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	wait := t.backoff.Duration
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			var err error
			if r, err = rewind(req); err != nil {
				return nil, err
			}
		}
		resp, err := t.inner.RoundTrip(r)
		last := attempt >= t.backoff.Steps || !replayable(req)
		switch {
		case err != nil && (last || !droppedConn(err)):
			return nil, err
		case err == nil && (last || !retryStatus(resp.StatusCode)):
			return resp, nil
		}
		if resp != nil {
			if ra := retryAfter(resp); ra > wait {
				wait = ra
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // to reuse the connection
			resp.Body.Close()
		}
		d := wait
		if t.backoff.Jitter > 0 {
			d += time.Duration(rand.Float64() * t.backoff.Jitter * float64(wait))
		}
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(d):
		}
		wait = time.Duration(float64(wait) * max(t.backoff.Factor, 1))
	}
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		b, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = b
	}
	return r, nil
}

func retryStatus(code int) bool {
	for _, c := range RetryStatusCodes {
		if c == code {
			return true
		}
	}
	return false
}

// retryAfter honours a Retry-After in seconds, up to 10s.
func retryAfter(resp *http.Response) time.Duration {
	s, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, 10*time.Second)
}

// droppedConn reports a connection that broke before an answer arrived.
func droppedConn(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &ne) && ne.Timeout())
}
