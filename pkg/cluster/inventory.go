package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/client"
)

// inventory is what one node's containerd holds in the k8s.io namespace.
type inventory struct {
	blobs  map[string]bool   // content digests present
	config map[string]string // manifest digest -> config digest
	images map[string]string // image name -> manifest digest
}

// parseContent reads `ctr content ls`: tab-separated DIGEST, SIZE, AGE,
// LABELS, where a manifest's labels name its config
// (containerd.io/gc.ref.content.config=DIGEST).
func parseContent(out []byte, inv *inventory) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) == 0 || !strings.HasPrefix(f[0], "sha256:") {
			continue
		}
		d := strings.TrimSpace(f[0])
		inv.blobs[d] = true
		if len(f) < 2 {
			continue
		}
		for _, kv := range strings.Split(f[len(f)-1], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "containerd.io/gc.ref.content.config" {
				inv.config[d] = strings.TrimSpace(v)
			}
		}
	}
}

// parseImages reads `ctr images ls`: whitespace-separated REF, TYPE, DIGEST,
// SIZE (two words), PLATFORMS, LABELS.
func parseImages(out []byte, inv *inventory) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] == "REF" || !strings.HasPrefix(f[2], "sha256:") {
			continue
		}
		inv.images[f[0]] = f[2]
	}
}

func newInventory() inventory {
	return inventory{blobs: map[string]bool{}, config: map[string]string{}, images: map[string]string{}}
}

// NodeImages returns, for each image name in a node's k8s.io namespace, the
// config digest it points at (the lock's config digest when the image was
// loaded intact; on the classic store also the engine's image ID).
func NodeImages(ctx context.Context, api client.APIClient, node string) (map[string]string, error) {
	invs, err := inventories(ctx, api, []Node{{Name: node}}, true)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, m := range invs[0].images {
		out[name] = invs[0].config[m]
	}
	return out, nil
}

// Exec runs cmd in a node container without privilege and returns its
// standard output; a non-zero exit is an error carrying the output's tail.
func Exec(ctx context.Context, api client.APIClient, node string, cmd ...string) (string, error) {
	r, err := run(ctx, api, node, cmd...)
	if err != nil {
		return "", fmt.Errorf("node %s: %s: %w", node, strings.Join(cmd, " "), err)
	}
	if r.ExitCode != 0 {
		return string(r.Stdout), fmt.Errorf("node %s: %s exited %d: %s", node, strings.Join(cmd, " "), r.ExitCode, r.tail())
	}
	return string(r.Stdout), nil
}
