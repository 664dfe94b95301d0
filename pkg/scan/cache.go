package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
)

// resultCache keeps Trivy's JSON report per image ID. An image ID is the
// digest of the image's config, which names every layer by digest, so the
// same ID scanned by the same Trivy with the same scanners against the same
// DB gives the same report: reusing it is exact, not an approximation. The
// policy is always applied afresh (ignore entries expire).
type resultCache struct {
	dir string
	key string // Trivy version, scanners, mode and the DB's identity
	off bool
}

// cacheKey identifies everything besides the image that shapes a report.
// The DB is identified by its metadata and its file's size and modification
// time (hashing a real DB, ~1 GB, would cost more than a scan).
func cacheKey(trivyVersion string, scanners []string, offline, allPackages bool, cacheDir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "hoist-scan-cache v1\ntrivy %s\nscanners %s\noffline %v\n", trivyVersion, strings.Join(scanners, ","), offline)
	if allPackages {
		// Reports that list every package (for the SBOM) are kept apart.
		fmt.Fprintf(h, "all packages\n")
	}
	for _, f := range []string{"db/metadata.json", "db/trivy.db", "java-db/metadata.json", "java-db/trivy-java.db"} {
		p := filepath.Join(cacheDir, f)
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(h, "%s absent\n", f)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading the vulnerability DB: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
		if strings.HasSuffix(f, ".json") {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("reading the vulnerability DB: %w", err)
			}
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (c resultCache) path(config string) string {
	sum := sha256.Sum256([]byte(c.key + "\n" + config))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".json")
}

// load fills r from a cached report and copies it to jsonPath; false when
// there is none (or it is unusable: then the image is simply scanned).
func (c resultCache) load(r *ImageResult, jsonPath string) bool {
	if c.off || r.ConfigDigest == "" {
		return false
	}
	b, err := os.ReadFile(c.path(r.ConfigDigest))
	if err != nil {
		return false
	}
	rep, err := ParseReport(b)
	if err != nil || rep.Metadata.ImageID != r.ConfigDigest {
		return false
	}
	if err := lock.WriteFileAtomic(jsonPath, b); err != nil {
		return false
	}
	fillResult(r, rep)
	r.Reports = []string{jsonPath}
	r.Cached = true
	return true
}

// store keeps a successful scan's report for later runs. A failure to store
// only costs a scan next time.
func (c resultCache) store(r ImageResult) {
	if r.Err != nil || r.ConfigDigest == "" || len(r.Reports) == 0 {
		return
	}
	b, err := os.ReadFile(r.Reports[0])
	if err != nil || os.MkdirAll(c.dir, 0o755) != nil {
		return
	}
	_ = lock.WriteFileAtomic(c.path(r.ConfigDigest), b)
}

// prune removes reports older than a week: the online DB changes daily, so
// older entries can no longer match and would only pile up.
func (c resultCache) prune(now time.Time) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > 7*24*time.Hour {
			os.Remove(filepath.Join(c.dir, e.Name()))
		}
	}
}

// waitDBFree waits while another Trivy holds the DB file: Trivy locks it
// exclusively for its whole run and a second one would wait silently.
func waitDBFree(ctx context.Context, path string, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // not downloaded yet: nothing holds it
	}
	defer f.Close()
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil // cannot tell; Trivy will report what it finds
		}
		if !said {
			if h, pids := holders(path); len(h) > 0 {
				fmt.Fprintf(out, "scan: another Trivy holds the vulnerability DB %s (Trivy locks it for its whole run): %s; waiting for it to finish (if no other scan is running, it was left by one that was killed: kill %s)\n",
					path, strings.Join(h, "; "), strings.Join(pids, " "))
			} else {
				fmt.Fprintf(out, "scan: another Trivy holds the vulnerability DB %s (Trivy locks it for its whole run); waiting for it to finish\n", path)
			}
			said = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the vulnerability DB %s, held by another Trivy: %w", path, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// holders names the processes that have path open ("pid N (command
// line)") and their pids, as far as /proc shows them; none where it
// cannot tell.
func holders(path string) (found, pids []string) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, nil
	}
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		pid := filepath.Base(p)
		if pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(p, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && target == path {
				cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
				cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
				if len(cmd) > 120 {
					cmd = cmd[:120] + "…"
				}
				found = append(found, "pid "+pid+" ("+cmd+")")
				pids = append(pids, pid)
				break
			}
		}
	}
	return found, pids
}
