package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/hoistci/hoist/pkg/dockersave"
)

// sendImage is one image to write into the archive.
type sendImage struct {
	Name    string // containerd name, e.g. docker.io/hoist/demo:1.2.3
	ID      string // config digest (on a containerd store not the engine's image ID)
	DiffIDs []string
}

// errStopped ends reading once sending failed.
var errStopped = errors.New("sending stopped")

// sendAhead is how many read blobs may wait to be written to the nodes: a
// few, so reading runs ahead of writing without holding every layer.
const sendAhead = 3

// smallBlob is the size up to which a blob is held in memory while its digest
// is computed; bigger ones are spooled to a temporary file.
var smallBlob int64 = 16 << 20

// rewrite reads `docker save` archives, one after the other (either
// layout: legacy folders with layer.tar, or the OCI layout newer engines
// write), and writes one OCI-layout archive holding only the blobs in want plus the configs, manifests and
// index of images. Layers a node already has are left out: containerd's
// importer resolves an OCI index against its content store, so it needs
// only the blobs it lacks. (Its Docker-layout importer, by contrast, fails
// on a layer missing from the archive.)
//
// Every blob is identified by hashing it as read, layers uncompressed, so
// the entry names of the input do not matter, nor whether a containerd
// store saved layers compressed. Only the images asked for are written,
// each as one single-platform manifest named for its config: an engine's
// index, with attestations or platforms the engine does not hold, never
// reaches a node, so its import cannot fail on content it was not sent.
// Each manifest written is recorded in manifests. At most max bytes are
// read out of each of saved, layers uncompressed (dockersave.Bound of the images'
// inspected sizes), and ctx stops every copy.
func rewrite(ctx context.Context, w io.Writer, saved []io.Reader, images []sendImage, want map[string]bool, tmpDir string, manifests map[string]loaded, max int64) (blobs int, sent int64, err error) {
	tw := tar.NewWriter(w)
	sizes := map[string]int64{}
	configs := map[string][]byte{}
	needConfig := map[string]bool{}
	for _, img := range images {
		needConfig[img.ID] = true
	}
	written := map[string]bool{}
	emit := func(d string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d[len("sha256:"):], Mode: 0o444, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		sent += n
		blobs++
		written[d] = true
		return err
	}
	// The saved blobs are read and hashed here while the ones before them
	// are written to the nodes by send: the engine's save and the nodes'
	// imports then run side by side instead of taking turns, one blob
	// each. Only send touches tw until it has returned.
	queue := make(chan *blob, sendAhead)
	stopped := make(chan struct{}) // send failed; it closes the rest
	var serr error
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for b := range queue {
			if serr == nil {
				r, err := b.open()
				if err == nil {
					err = emit(b.digest, b.size, r)
				}
				if err != nil {
					serr = fmt.Errorf("writing %s: %w", b.digest, err)
					close(stopped)
				}
			}
			b.close()
		}
	}()
	queued := map[string]bool{}
	// readOne reads one of the saves.
	readOne := func(saved io.Reader) error {
		sr := dockersave.NewBoundedReader(ctx, saved, max)
		defer sr.Close()
		for {
			e, err := sr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the saved images: %w", err)
			}
			if e.Kind == dockersave.ManifestJSON || e.Kind == dockersave.Metadata {
				continue
			}
			b, err := hashEntry(sr, tmpDir)
			if err != nil {
				return err
			}
			sizes[b.digest] = b.size
			if needConfig[b.digest] && b.mem != nil {
				configs[b.digest] = b.mem
			}
			if !want[b.digest] || queued[b.digest] {
				b.close()
				continue
			}
			queued[b.digest] = true
			select {
			case queue <- b:
			case <-stopped:
				b.close()
				return errStopped
			}
		}
	}
	read := func() error {
		defer close(queue)
		for _, r := range saved {
			if err := readOne(r); errors.Is(err, errStopped) {
				return nil // send's error is the one
			} else if err != nil {
				return err
			}
		}
		return nil
	}
	rerr := read()
	<-sendDone
	if err := errors.Join(serr, rerr); err != nil {
		return blobs, sent, err
	}
	idx := dockersave.Index{SchemaVersion: 2, MediaType: dockersave.MediaOCIIndex}
	for _, img := range images {
		cfg, ok := configs[img.ID]
		if !ok {
			return blobs, sent, fmt.Errorf("the engine's save of %s has no config %s: the image changed while loading; run Images again", img.Name, img.ID)
		}
		var c struct {
			Architecture string `json:"architecture"`
			OS           string `json:"os"`
			RootFS       struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return blobs, sent, fmt.Errorf("reading the config of %s: %w", img.Name, err)
		}
		if !slices.Equal(c.RootFS.DiffIDs, img.DiffIDs) {
			// E.g. a containerd store's image ID given where the config
			// digest belongs: that names the manifest, not the config.
			return blobs, sent, fmt.Errorf("%s: blob %s is not the config of the image's layers: load by config digest (on a containerd store the image ID is the manifest's)", img.Name, img.ID)
		}
		if !written[img.ID] {
			if err := emit(img.ID, int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
				return blobs, sent, err
			}
		}
		m := dockersave.Manifest{SchemaVersion: 2, MediaType: dockersave.MediaDockerManifest, Config: dockersave.Descriptor{MediaType: dockersave.MediaDockerConfig, Digest: img.ID, Size: int64(len(cfg))}}
		for _, d := range img.DiffIDs {
			size, ok := sizes[d]
			if !ok {
				return blobs, sent, fmt.Errorf("the engine's save of %s has no layer %s: the image changed while loading; run Images again", img.Name, d)
			}
			m.Layers = append(m.Layers, dockersave.Descriptor{MediaType: dockersave.MediaDockerLayer, Digest: d, Size: size})
		}
		mb, _ := json.Marshal(m)
		md := digestOf(mb)
		manifests[md] = loaded{Config: img.ID, Layers: img.DiffIDs}
		if !written[md] {
			if err := emit(md, int64(len(mb)), bytes.NewReader(mb)); err != nil {
				return blobs, sent, err
			}
		}
		var p *dockersave.Platform
		if c.OS != "" {
			p = &dockersave.Platform{Architecture: c.Architecture, OS: c.OS}
		}
		idx.Manifests = append(idx.Manifests, dockersave.Descriptor{
			MediaType: dockersave.MediaDockerManifest, Digest: md, Size: int64(len(mb)), Platform: p,
			Annotations: map[string]string{
				"io.containerd.image.name":          img.Name,
				"org.opencontainers.image.ref.name": refName(img.Name),
			},
		})
	}
	ib, _ := json.Marshal(idx)
	for _, f := range []struct {
		name string
		data []byte
	}{{"oci-layout", []byte(dockersave.LayoutFile)}, {"index.json", ib}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o444, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return blobs, sent, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return blobs, sent, err
		}
	}
	return blobs, sent, tw.Close()
}

// refName is the tag part of a name, as OCI layouts record it.
func refName(name string) string {
	for i := len(name) - 1; i >= 0 && name[i] != '/'; i-- {
		if name[i] == ':' {
			return name[i+1:]
		}
	}
	return "latest"
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// blob is one hashed archive entry, in memory or in a temporary file.
type blob struct {
	digest string
	size   int64
	mem    []byte
	file   *os.File
}

// hashEntry reads one entry whole. Its size is known only once read (a
// compressed layer is read uncompressed), so the first smallBlob bytes are
// kept in memory and only a bigger entry is spooled.
func hashEntry(r io.Reader, tmpDir string) (*blob, error) {
	h := sha256.New()
	head, err := io.ReadAll(io.LimitReader(r, smallBlob+1))
	if err != nil {
		return nil, fmt.Errorf("reading the saved images: %w", err)
	}
	if int64(len(head)) <= smallBlob {
		h.Write(head)
		return &blob{digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: int64(len(head)), mem: head}, nil
	}
	f, err := os.CreateTemp(tmpDir, "hoist-layer-*")
	if err != nil {
		return nil, fmt.Errorf("spooling a layer: %w", err)
	}
	os.Remove(f.Name()) // unlinked: gone however this process ends
	n, err := io.Copy(io.MultiWriter(f, h), io.MultiReader(bytes.NewReader(head), r))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spooling a layer: %w", err)
	}
	return &blob{digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: n, file: f}, nil
}

func (b *blob) open() (io.Reader, error) {
	if b.file == nil {
		return bytes.NewReader(b.mem), nil
	}
	if _, err := b.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return b.file, nil
}

func (b *blob) close() {
	if b.file != nil {
		b.file.Close()
	}
}
