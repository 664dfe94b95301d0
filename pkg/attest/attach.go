package attest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Media types and annotations of the two attachment layouts.
const (
	// MediaTypeDSSE is a DSSE envelope: the layer media type in cosign's
	// `.att` images and the artifact type of Hoist's referrers.
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"
	// mediaTypeSimpleSigning is cosign's signature payload layer.
	mediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// annotationSignature holds a layer's signature in cosign's layout
	// (empty for attestations: the envelope carries it).
	annotationSignature = "dev.cosignproject.cosign/signature"
	// annotationPredicate is cosign's name for an attestation's type.
	annotationPredicate = "predicateType"
	// AnnotationPredicateType names the predicate type of a referrer's layer.
	AnnotationPredicateType = "in-toto.io/predicate-type"
)

// Envelope is one signed statement ready to attach.
type Envelope struct {
	PredicateType string
	DSSE          []byte
	// Cert is the signing key's certificate when signed keylessly.
	Cert *Certificate
}

// ImageSignature is cosign's signature of an image: the simple-signing
// payload and its base64 signature.
type ImageSignature struct {
	Payload []byte
	Sig     string
	// Cert is the signing key's certificate when signed keylessly.
	Cert *Certificate
}

// withCert adds a keyless signature's certificate and chain to a layer's
// annotations, where cosign looks for them.
func withCert(ann map[string]string, c *Certificate) map[string]string {
	if c != nil {
		ann[annotationCertificate] = string(c.Cert)
		if len(c.Chain) > 0 {
			ann[annotationChain] = string(c.Chain)
		}
	}
	return ann
}

// Attached is what Attach wrote for one image.
type Attached struct {
	Att name.Tag // cosign's attestations tag, sha256-HEX.att
	Sig name.Tag // cosign's signature tag, sha256-HEX.sig
	// Referrer is the OCI referrer holding every envelope, one layer each:
	// the manifest Att names.
	Referrer      string
	PredicateType []string // of its layers, in order
}

// Registry is what Attach needs of a registry: one authenticated session
// for every image of a push (registry.Session), so no artifact pays for a
// ping, a token or an existence check of its own.
type Registry interface {
	// Upload writes a blob the registry cannot have yet (its bytes were
	// just made) and returns its digest.
	Upload(ctx context.Context, repo name.Repository, blob []byte) (v1.Hash, error)
	// Put writes a manifest under ref.
	Put(ctx context.Context, ref name.Reference, manifest []byte, mt types.MediaType) error
	// PutReferrer writes a manifest under ref and makes it a referrer of
	// subject (through the fallback tag where the registry has no
	// referrers API).
	PutReferrer(ctx context.Context, ref name.Reference, manifest []byte, mt types.MediaType, subject v1.Hash, artifactType string) error
	// PrepareReferrer reads ahead, writing nothing, what PutReferrer for
	// subject will need, so that write waits on no read.
	PrepareReferrer(ctx context.Context, repo name.Repository, subject v1.Hash)
}

// Attach writes the envelopes and the signature for the image d (whose
// manifest subject describes) in both layouts at once, as one manifest:
// cosign's `.att` image (so `cosign verify-attestation` finds it) is also
// the OCI referrer of d (its subject), one layer per envelope annotated
// with its predicate type under both cosign's and in-toto's names, its
// config's media type (the artifact type the referrers index records)
// DSSE. The image signature goes to cosign's `.sig` tag. The `.att` and
// `.sig` tags are replaced, not appended to: they hold this push's proofs;
// the referrers index keeps earlier pushes' referrers.
//
// Every blob is uploaded once (both manifests share one config), all at
// once, then the two manifests; where the registry has no referrers API
// the fallback tag is read and written once for the image.
func Attach(ctx context.Context, r Registry, d name.Digest, subject v1.Descriptor, envs []Envelope, sig *ImageSignature) (*Attached, error) {
	st, err := newStaged(r, d, subject, sig)
	if err != nil {
		return nil, err
	}
	return st.Attach(ctx, envs)
}

// Staged is one image's proofs on their way: their blobs are in the
// registry, but no manifest or tag names them yet, so nothing is attached.
type Staged struct {
	r        Registry
	d        name.Digest
	h        v1.Hash
	subject  v1.Descriptor
	envs     []Envelope
	sig      *ImageSignature
	uploaded map[v1.Hash]bool
}

// Stage uploads the blobs of the envelopes, of the image signature and the
// shared config for d ahead of Attach: a push can send them while the image's own blobs go
// up, and attach them (with the envelopes that had to wait) once the
// digest gate has passed.
func Stage(ctx context.Context, r Registry, d name.Digest, subject v1.Descriptor, envs []Envelope, sig *ImageSignature) (*Staged, error) {
	st, err := newStaged(r, d, subject, sig)
	if err != nil {
		return nil, err
	}
	st.envs = envs
	r.PrepareReferrer(ctx, d.Context(), st.h)
	cfg, err := sharedConfig()
	if err != nil {
		return nil, err
	}
	blobs := [][]byte{cfg}
	for _, e := range envs {
		blobs = append(blobs, e.DSSE)
	}
	if sig != nil {
		blobs = append(blobs, sig.Payload)
	}
	if err := st.upload(ctx, blobs); err != nil {
		return nil, err
	}
	return st, nil
}

func newStaged(r Registry, d name.Digest, subject v1.Descriptor, sig *ImageSignature) (*Staged, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("attaching to %s: %w", d, err)
	}
	if subject.Digest != h {
		return nil, fmt.Errorf("attaching to %s: subject descriptor names %s", d, subject.Digest)
	}
	return &Staged{r: r, d: d, h: h, subject: subject, sig: sig, uploaded: map[v1.Hash]bool{}}, nil
}

// upload sends the blobs not sent yet, all at once.
func (st *Staged) upload(ctx context.Context, blobs [][]byte) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range blobs {
		h, _, err := v1.SHA256(bytes.NewReader(b))
		if err != nil {
			return err
		}
		if st.uploaded[h] {
			continue
		}
		st.uploaded[h] = true
		g.Go(func() error {
			_, err := st.r.Upload(gctx, st.d.Context(), b)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("writing the proofs of %s: %w", st.d, err)
	}
	return nil
}

// Attach uploads envs and whatever else is not in the registry yet, then
// writes the manifests that attach every staged and given envelope and the
// image signature to the image (see the function Attach). Staged envelopes
// come first in the `.att` image.
func (st *Staged) Attach(ctx context.Context, envs []Envelope) (*Attached, error) {
	d, h := st.d, st.h
	all := append(append([]Envelope{}, st.envs...), envs...)
	tagBase := strings.Replace(h.String(), ":", "-", 1)
	out := &Attached{Att: d.Context().Tag(tagBase + ".att"), Sig: d.Context().Tag(tagBase + ".sig")}
	var imgs []v1.Image
	var att, sigImg v1.Image
	var err error
	if len(all) > 0 {
		if att, err = attestationImage(st.subject, all); err != nil {
			return nil, fmt.Errorf("assembling the attestations of %s: %w", d, err)
		}
		imgs = append(imgs, att)
	}
	if st.sig != nil {
		sigImg, err = mutate.Append(cosignBase(), mutate.Addendum{
			Layer:       static.NewLayer(st.sig.Payload, mediaTypeSimpleSigning),
			Annotations: withCert(map[string]string{annotationSignature: st.sig.Sig}, st.sig.Cert),
		})
		if err == nil {
			sigImg, err = withSharedConfig(sigImg, types.OCIConfigJSON)
		}
		if err != nil {
			return nil, fmt.Errorf("assembling the signature of %s: %w", d, err)
		}
		imgs = append(imgs, sigImg)
	}
	blobs, err := blobsOf(imgs...)
	if err != nil {
		return nil, fmt.Errorf("assembling the proofs of %s: %w", d, err)
	}
	if err := st.upload(ctx, blobs); err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	if sigImg != nil {
		g.Go(func() error {
			raw, mt, err := rawManifest(sigImg)
			if err != nil {
				return err
			}
			if err := st.r.Put(gctx, out.Sig, raw, mt); err != nil {
				return fmt.Errorf("writing the signature of %s: %w", d, err)
			}
			return nil
		})
	}
	if att != nil {
		g.Go(func() error {
			raw, mt, err := rawManifest(att)
			if err != nil {
				return err
			}
			if err := st.r.PutReferrer(gctx, out.Att, raw, mt, h, MediaTypeDSSE); err != nil {
				return fmt.Errorf("writing the attestations of %s: %w", d, err)
			}
			rd, _, err := v1.SHA256(bytes.NewReader(raw))
			if err != nil {
				return err
			}
			out.Referrer = rd.String()
			for _, e := range all {
				out.PredicateType = append(out.PredicateType, e.PredicateType)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// blobsOf is every blob (config and layers) of the images, each once.
// Layers are found by the manifest's descriptors: the shared config lists
// no diff_ids to find them by.
func blobsOf(imgs ...v1.Image) ([][]byte, error) {
	seen := map[v1.Hash]bool{}
	var out [][]byte
	add := func(b []byte) {
		h, _, _ := v1.SHA256(bytes.NewReader(b))
		if !seen[h] {
			seen[h] = true
			out = append(out, b)
		}
	}
	for _, img := range imgs {
		cfg, err := img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		add(cfg)
		m, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		for _, desc := range m.Layers {
			l, err := img.LayerByDigest(desc.Digest)
			if err != nil {
				return nil, err
			}
			rc, err := l.Compressed()
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
			add(b)
		}
	}
	return out, nil
}

func rawManifest(img v1.Image) ([]byte, types.MediaType, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, "", err
	}
	mt, err := img.MediaType()
	return raw, mt, err
}

// withSharedConfig gives img the config both manifests share, of media
// type mt: the same bytes for every image, so one blob per repository,
// where configs listing each manifest's layers would be two new blobs per
// image. cosign and the referrers readers never read it; they find the
// layers by the manifest's digests.
func withSharedConfig(img v1.Image, mt types.MediaType) (v1.Image, error) {
	img, err := mutate.ConfigFile(img, sharedConfigFile())
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(img, mt), nil
}

func sharedConfigFile() *v1.ConfigFile {
	return &v1.ConfigFile{RootFS: v1.RootFS{Type: "layers"}}
}

// sharedConfig is the bytes of the shared config, as the manifests name it.
func sharedConfig() ([]byte, error) {
	img, err := withSharedConfig(empty.Image, types.OCIConfigJSON)
	if err != nil {
		return nil, err
	}
	return img.RawConfigFile()
}

// cosignBase is the empty OCI image cosign builds its tags on.
func cosignBase() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// attestationImage is cosign's `.att` image and an OCI referrer of
// subject in one: artifact type (the config's media type, which the
// referrers index records) DSSE, one layer per envelope. The subject goes
// on last: mutating the config drops it.
func attestationImage(subject v1.Descriptor, envs []Envelope) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), MediaTypeDSSE)
	for _, e := range envs {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer: static.NewLayer(e.DSSE, MediaTypeDSSE),
			Annotations: withCert(map[string]string{
				annotationSignature:     "",
				annotationPredicate:     e.PredicateType,
				AnnotationPredicateType: e.PredicateType,
			}, e.Cert),
		})
		if err != nil {
			return nil, err
		}
	}
	img, err := withSharedConfig(img, MediaTypeDSSE)
	if err != nil {
		return nil, err
	}
	subject.Platform, subject.Annotations, subject.URLs = nil, nil, nil
	return mutate.Subject(img, subject).(v1.Image), nil
}
