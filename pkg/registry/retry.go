package registry

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// retrying is Hoist's one retry layer: it sends one HTTP exchange again
// with backoff when the registry answers 408, 429 or 5xx or the connection
// drops, as long as the request can be sent again (no body, or a body it
// can rewind). It sits below go-containerregistry, so the /v2/ ping, token
// exchanges, blob uploads, manifests and the tag session all go through it.
// go-containerregistry's own retries are kept from stacking on it (see
// uploadRestart and gaveUp): one request is sent at most backoff.Steps times.
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
		again := replayable(req)
		last := attempt >= t.backoff.Steps || !again
		switch {
		case err != nil && !droppedConn(err):
			return nil, err
		case err != nil && last:
			if again {
				return nil, &gaveUp{err: err, tries: attempt}
			}
			return nil, err
		case err == nil && (last || !retryStatus(resp.StatusCode)):
			return resp, nil
		}
		d := wait
		if resp != nil {
			// Retry-After stretches this wait only; the schedule goes on.
			d = max(d, retryAfter(resp))
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // to reuse the connection
			resp.Body.Close()
		}
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

// gaveUp is a dropped connection retried until the schedule ran out. Its
// cause shows in the message but does not unwrap: go-containerregistry
// sends again any request whose error unwraps to a dropped connection, and
// this one has had all its tries.
type gaveUp struct {
	err   error
	tries int
}

func (e *gaveUp) Error() string {
	return fmt.Sprintf("%v (connection dropped %d times in a row)", e.err, e.tries)
}

// uploadRestart is go-containerregistry's predicate for starting a whole
// blob upload or manifest write again. It says yes only when the registry
// lost the upload session, where a new upload can succeed and sending the
// same request again could not; everything else was retried below already.
func uploadRestart(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.BlobUploadInvalidErrorCode || d.Code == transport.BlobUploadUnknownErrorCode {
			return true
		}
	}
	return false
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

// droppedConn reports a connection that broke, timed out or failed in a
// way the system calls temporary before an answer arrived. It covers every
// error go-containerregistry's own retry would send again, so that retrying
// stays the only layer that does.
func droppedConn(err error) bool {
	var ne net.Error
	var tmp interface{ Temporary() bool }
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &ne) && ne.Timeout()) || (errors.As(err, &tmp) && tmp.Temporary())
}
