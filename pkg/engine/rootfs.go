package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"

	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
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

// ImportRootfs builds the tarball for r and loads it as ref. Entries are
// written in a fixed order with zero timestamps, and the image config has
// a fixed creation time, so the same files make the same image ID on
// every machine and in every checkout (CI shards' images built FROM it
// come out identical). It returns the image's ID.
func (e *Engine) ImportRootfs(ctx context.Context, ref string, r Rootfs) (string, error) {
	layer, err := os.CreateTemp("", "hoist-base-*.tar")
	if err != nil {
		return "", fmt.Errorf("making base %s: %w", ref, err)
	}
	defer os.Remove(layer.Name())
	defer layer.Close()
	h := sha256.New()
	if err := writeRootfs(io.MultiWriter(layer, h), r); err != nil {
		return "", err
	}
	size, err := layer.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", fmt.Errorf("making base %s: %w", ref, err)
	}
	if _, err := layer.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("making base %s: %w", ref, err)
	}
	diffID := fmt.Sprintf("sha256:%x", h.Sum(nil))
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      baseCreated,
		"config":       map[string]any{"Env": r.Env, "Labels": r.Labels},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]any{{"created": baseCreated, "created_by": "hoist: base made from host files"}},
	})
	if err != nil {
		return "", err
	}
	cfgName := fmt.Sprintf("%x.json", sha256.Sum256(cfg))
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := writeFile(tw, cfgName, bytes.NewReader(cfg), int64(len(cfg)))
		if err == nil {
			err = writeFile(tw, "layer.tar", layer, size)
		}
		if err == nil {
			err = writeFile(tw, "manifest.json", bytes.NewReader(manifest), int64(len(manifest)))
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	resp, err := e.API.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		return "", fmt.Errorf("making base %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil); err != nil {
		return "", fmt.Errorf("making base %s: %w", ref, err)
	}
	img, err := e.Inspect(ctx, ref)
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// baseCreated is every made base's creation time: fixed, so the image ID
// depends on the files alone.
const baseCreated = "1970-01-01T00:00:00Z"

func writeFile(tw *tar.Writer, name string, r io.Reader, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
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
