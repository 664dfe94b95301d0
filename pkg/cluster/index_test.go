package cluster_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"

	"github.com/docker/docker/client"

	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// TestLoadIndexWithAttestation: on a containerd store an image can be an
// index naming an attestation manifest and a platform whose content the
// engine does not hold (what `docker build` on Docker Desktop and a pull of
// a multi-platform base leave). The engine's save then names content it
// lacks, which is what makes `ctr images import` fail with "content digest
// … not found" when the save is imported as is. K3dLoad sends only the
// engine's platform, as one manifest of its own, so the load succeeds and
// the node holds the image's config and layers. Only a containerd store can
// hold such an image, so this runs on the modern engine.
func TestLoadIndexWithAttestation(t *testing.T) {
	testenv.OnModern(t)
	e := testenv.Engine(t)
	if e.Store != engine.StoreContainerd {
		t.Fatalf("the modern engine keeps images in the %s store, want containerd", e.Store)
	}
	ctx := context.Background()
	ref := testenv.Unique("hoist-test/index") + ":1"
	archive, cfg, diffID, index := indexArchive(t, "docker.io/"+ref)
	resp, err := e.API.ImageLoad(ctx, bytes.NewReader(archive), client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	got, err := e.Inspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != index {
		t.Fatalf("engine image ID %s, want the index %s", got.ID, index)
	}
	if c, err := e.ConfigDigest(ctx, ref); err != nil || c != cfg {
		t.Fatalf("ConfigDigest = %s, %v; want %s", c, err, cfg)
	}

	_, nodes := standin.Cluster(t, e, standin.Image(t, e), cluster.RoleServer, cluster.RoleAgent)
	imgs := []cluster.Image{{Ref: ref, ID: cfg, DiffIDs: []string{diffID}}}
	res, err := cluster.Load(ctx, e.API, nodes, imgs, cluster.LoadOptions{})
	if err != nil {
		t.Fatalf("loading an index with an attestation and an absent platform: %v", err)
	}
	if len(res.Sent) != 1 || len(res.Nodes) != 2 {
		t.Fatalf("sent %v to %v, want the image to both nodes", res.Sent, res.Nodes)
	}
	requireLoaded(t, e, nodes, imgs)
	for _, n := range nodes {
		requireUnpacks(t, e, n.Name, ref)
	}
}

// indexArchive is an OCI image layout for `docker load`: an index with the
// linux/amd64 image (one gzip layer), an attestation manifest for it, and
// a linux/arm64 manifest whose blobs are absent. It returns the archive,
// the config digest, the layer's diff_id and the index digest.
func indexArchive(t *testing.T, name string) (archive []byte, cfg, diffID, index string) {
	t.Helper()
	blobs := map[string][]byte{}
	put := func(b []byte) (string, int) {
		s := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(s[:])
		blobs[d] = b
		return d, len(b)
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := []byte("an image with an attestation\n")
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	s := sha256.Sum256(layer.Bytes())
	diffID = "sha256:" + hex.EncodeToString(s[:])
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer.Bytes())
	zw.Close()
	ld, ls := put(gz.Bytes())
	cfg, cs := put(js(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}}}))
	desc := func(mt, d string, n int) map[string]any {
		return map[string]any{"mediaType": mt, "digest": d, "size": n}
	}
	const (
		ociManifest = "application/vnd.oci.image.manifest.v1+json"
		ociIndex    = "application/vnd.oci.image.index.v1+json"
		ociConfig   = "application/vnd.oci.image.config.v1+json"
	)
	md, ms := put(js(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": desc(ociConfig, cfg, cs), "layers": []any{desc("application/vnd.oci.image.layer.v1.tar+gzip", ld, ls)}}))
	sd, ss := put([]byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`))
	acd, acs := put(js(map[string]any{"architecture": "unknown", "os": "unknown", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{sd}}}))
	amd, ams := put(js(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": desc(ociConfig, acd, acs), "layers": []any{desc("application/vnd.in-toto+json", sd, ss)}}))
	with := func(d map[string]any, k string, v any) map[string]any { d[k] = v; return d }
	absent := "sha256:" + hex.EncodeToString(bytes.Repeat([]byte{0xab}, 32))
	index, is := put(js(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": []any{
		with(desc(ociManifest, md, ms), "platform", map[string]string{"architecture": "amd64", "os": "linux"}),
		with(desc(ociManifest, absent, 512), "platform", map[string]string{"architecture": "arm64", "os": "linux"}),
		with(with(desc(ociManifest, amd, ams), "platform", map[string]string{"architecture": "unknown", "os": "unknown"}),
			"annotations", map[string]string{"vnd.docker.reference.digest": md, "vnd.docker.reference.type": "attestation-manifest"}),
	}}))
	top := js(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": []any{
		with(desc(ociIndex, index, is), "annotations", map[string]string{"io.containerd.image.name": name}),
	}})
	var out bytes.Buffer
	aw := tar.NewWriter(&out)
	file := func(n string, b []byte) {
		aw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		aw.Write(b)
	}
	for d, b := range blobs {
		file("blobs/sha256/"+d[len("sha256:"):], b)
	}
	file("index.json", top)
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	aw.Close()
	return out.Bytes(), cfg, diffID, index
}
