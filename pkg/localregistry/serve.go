package localregistry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hoistci/hoist/pkg/lock"
)

// The files of a local registry's folder.
const (
	identityFile = "identity"    // random token naming this folder's registry
	portFile     = "port"        // the port recorded for this checkout
	serverLock   = "server.lock" // held by the serving process for its lifetime
	serverPID    = "server.pid"  // written by the process holding serverLock
	ensureLock   = "ensure.lock" // serialises Ensure and Stop within a checkout
	logFile      = "registry.log"
	dataDir      = "data" // blobs/, manifests/ and the manifest journal
)

// identityPath is where a local registry says whose it is. It lies outside
// /v2/, so no registry client ever asks for it.
const identityPath = "/_hoist/identity"

// identity is what a local registry answers on identityPath.
type identity struct {
	Token string `json:"token"`
	Dir   string `json:"dir"`
	PID   int    `json:"pid"`
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// Dir is the registry's folder: its identity token and data/.
	Dir string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// Log gets one line per request; nil discards them.
	Log io.Writer
	// Ready, when set, is called with the port once the registry answers.
	Ready func(port int)
}

// ErrPortBusy is returned by Serve when its port is taken.
var ErrPortBusy = errors.New("port already in use")

// Serve runs go-containerregistry's registry on 127.0.0.1 until ctx ends,
// with blobs on disk under Dir/data/blobs and every manifest write
// journalled under Dir/data, so a registry started again on the same folder
// serves everything pushed before. One process serves a folder at a time.
func Serve(ctx context.Context, o ServeOptions) error {
	if err := os.MkdirAll(filepath.Join(o.Dir, dataDir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("serving the local registry: %w", err)
	}
	dir, err := registryDir(o.Dir, false) // the name Ensure compares
	if err != nil {
		return fmt.Errorf("serving the local registry: %w", err)
	}
	data := filepath.Join(dir, dataDir)
	held, err := tryLock(filepath.Join(dir, serverLock))
	if err != nil {
		return fmt.Errorf("serving the local registry: %w", err)
	}
	if held == nil {
		pid, _ := readInt(filepath.Join(dir, serverPID))
		return fmt.Errorf("serving the local registry: another process (pid %d) already serves %s", pid, dir)
	}
	defer held.Close() // releases the lock
	if err := lock.WriteFileAtomic(filepath.Join(dir, serverPID), []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return fmt.Errorf("serving the local registry: %w", err)
	}
	defer os.Remove(filepath.Join(dir, serverPID))
	token, err := identityToken(dir)
	if err != nil {
		return fmt.Errorf("serving the local registry: %w", err)
	}
	// A process killed mid-upload leaves its temporary file behind.
	if tmp, _ := filepath.Glob(filepath.Join(data, "blobs", "upload-*")); len(tmp) > 0 {
		for _, f := range tmp {
			os.Remove(f)
		}
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	blobs := ggcr.NewDiskBlobHandler(filepath.Join(data, "blobs"))
	inner := ggcr.New(ggcr.WithBlobHandler(blobs), ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(logw, "", log.LstdFlags)))
	j, err := openJournal(data, inner)
	if err != nil {
		return fmt.Errorf("serving the local registry: %w", err)
	}
	defer func() { _ = j.Close() }()

	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(o.Port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("serving the local registry on 127.0.0.1:%d: %w", o.Port, ErrPortBusy)
		}
		return fmt.Errorf("serving the local registry: %w", err)
	}
	id, _ := json.Marshal(identity{Token: token, Dir: dir, PID: os.Getpid()})
	h := &handler{inner: inner, journal: j, blobs: filepath.Join(data, "blobs"), identity: id}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	port := l.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(logw, "serving %s on 127.0.0.1:%d (pid %d)\n", dir, port, os.Getpid())
	if o.Ready != nil {
		o.Ready(port)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving the local registry: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx) // lets a manifest write in flight reach the journal
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// handler adds to go-containerregistry's registry what a registry that
// outlives its process needs: the manifest journal, cross-repository mounts
// of blobs it holds (all repositories share one blob store), and the
// identity endpoint.
type handler struct {
	inner    http.Handler
	journal  *journal
	blobs    string
	identity []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == identityPath:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(h.identity)
	case (r.Method == http.MethodPut || r.Method == http.MethodDelete) && manifestPath(r.URL.Path) != nil:
		p := manifestPath(r.URL.Path)
		h.journal.serve(w, r, p[0], p[1])
	case r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" && h.mount(w, r):
	default:
		h.inner.ServeHTTP(w, r)
	}
}

// mount answers a cross-repository mount of a blob the store holds; for any
// other it returns false and the registry opens an upload as usual.
func (h *handler) mount(w http.ResponseWriter, r *http.Request) bool {
	repo, ok := strings.CutSuffix(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/"), "/blobs/uploads")
	d, err := v1.NewHash(r.URL.Query().Get("mount"))
	if !ok || repo == "" || err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(h.blobs, d.Algorithm, d.Hex)); err != nil {
		return false
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusCreated)
	return true
}

// manifestPath splits /v2/REPO/manifests/REF into REPO and REF.
func manifestPath(p string) []string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	i := strings.LastIndex(rest, "/manifests/")
	if !ok || i <= 0 {
		return nil
	}
	repo, ref := rest[:i], rest[i+len("/manifests/"):]
	if ref == "" || strings.Contains(ref, "/") {
		return nil
	}
	return []string{repo, ref}
}

// identityToken returns the token of the registry folder dir, creating it
// the first time.
func identityToken(dir string) (string, error) {
	p := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	r := make([]byte, 16)
	if _, err := rand.Read(r); err != nil {
		return "", err
	}
	t := hex.EncodeToString(r)
	if err := lock.WriteFileAtomic(p, []byte(t+"\n")); err != nil {
		return "", err
	}
	return t, nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// tryLock takes an exclusive lock on path without waiting: nil when another
// process holds it. Closing the file releases it, as does the holder's exit,
// however it ends.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}
