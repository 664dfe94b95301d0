package engine

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Rootfs describes a root filesystem assembled from host files, so a base
// image can be made with no pull (e.g. Debian's busybox-static binary).
type Rootfs struct {
	Files map[string]string // path in the image -> host path
	Links map[string]string // path in the image -> symlink target
	Dirs  []string          // empty folders
	Env   []string          // KEY=VALUE
	// Labels are set on the image (Hoist records the inputs hash there).
	Labels map[string]string
}

// ImportRootfs builds the tarball for r and imports it as ref. Entries are
// written in a fixed order with zero timestamps, so the layer is the same
// for the same files.
func (e *Engine) ImportRootfs(ctx context.Context, ref string, r Rootfs) (string, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeRootfs(pw, r))
	}()
	defer func() {
		// Closing the reader stops a writer the import left early; wait for it.
		_ = pr.Close()
		<-done
	}()
	var changes []string
	for _, kv := range r.Env {
		changes = append(changes, "ENV "+kv)
	}
	for _, k := range sortedKeys(r.Labels) {
		changes = append(changes, fmt.Sprintf("LABEL %s=%q", k, r.Labels[k]))
	}
	return e.Import(ctx, pr, ref, changes)
}

func writeRootfs(w io.Writer, r Rootfs) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	addDir := func(p string) error {
		var parts []string
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			d := parts[i]
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range sorted(r.Dirs) {
		if err := addDir(path.Join(d, "x")); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(r.Files) {
		if err := addDir(p); err != nil {
			return err
		}
		host := r.Files[p]
		f, err := os.Open(host)
		if err != nil {
			return fmt.Errorf("base file %s: %w", host, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: int64(st.Mode().Perm()), Size: st.Size(), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return err
		}
		// The size seen at the header: a file that grows meanwhile is cut
		// there instead of streamed without end.
		_, err = io.CopyN(tw, f, st.Size())
		f.Close()
		if err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(r.Links) {
		if err := addDir(p); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Typeflag: tar.TypeSymlink, Linkname: r.Links[p], Mode: 0o777}); err != nil {
			return err
		}
	}
	return tw.Close()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// BusyboxRootfs is a minimal shell userland from Debian's busybox-static.
func BusyboxRootfs(busybox string) Rootfs {
	links := map[string]string{}
	for _, a := range []string{"sh", "cat", "echo", "ls", "head", "tail", "sleep", "true", "false", "test", "grep", "wc", "env", "mkdir", "rm", "cp", "dd", "sha256sum", "wget", "nc", "id", "date", "printf", "tr"} {
		links["/bin/"+a] = "busybox"
	}
	return Rootfs{
		Files: map[string]string{"/bin/busybox": busybox},
		Links: links,
		Dirs:  []string{"/tmp", "/etc", "/dev", "/proc", "/sys"},
		Env:   []string{"PATH=/bin"},
	}
}
