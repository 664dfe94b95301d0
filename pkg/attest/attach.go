package attest

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
}

// ImageSignature is cosign's signature of an image: the simple-signing
// payload and its base64 signature.
type ImageSignature struct {
	Payload []byte
	Sig     string
}

// Attached is what Attach wrote for one image.
type Attached struct {
	Att name.Tag // cosign's attestations tag, sha256-HEX.att
	Sig name.Tag // cosign's signature tag, sha256-HEX.sig
	// Referrer is the OCI referrer holding every envelope, one layer each.
	Referrer      string
	PredicateType []string // of its layers, in order
}

// Attach writes the envelopes and the signature for the image d (whose
// manifest subject describes) in both layouts: cosign's tags (so `cosign
// verify-attestation` and `cosign verify` find them) and one OCI referrer
// whose subject is d, holding every envelope as a layer annotated with its
// predicate type (as Docker's attestation manifests do). go-containerregistry
// maintains the fallback tag sha256-HEX where the registry has no referrers
// API. The `.att` and `.sig` tags are replaced, not appended to: they hold
// this push's proofs. The three are written at once.
//
// p is the caller's pusher: its connections and tokens are reused across
// images, where a write of its own would ping and authenticate each time.
func Attach(ctx context.Context, p *remote.Pusher, d name.Digest, subject v1.Descriptor, envs []Envelope, sig *ImageSignature) (*Attached, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("attaching to %s: %w", d, err)
	}
	if subject.Digest != h {
		return nil, fmt.Errorf("attaching to %s: subject descriptor names %s", d, subject.Digest)
	}
	tagBase := strings.Replace(h.String(), ":", "-", 1)
	out := &Attached{Att: d.Context().Tag(tagBase + ".att"), Sig: d.Context().Tag(tagBase + ".sig")}
	var g errgroup.Group
	if sig != nil {
		g.Go(func() error {
			img, err := mutate.Append(cosignBase(), mutate.Addendum{
				Layer:       static.NewLayer(sig.Payload, mediaTypeSimpleSigning),
				Annotations: map[string]string{annotationSignature: sig.Sig},
			})
			if err != nil {
				return fmt.Errorf("assembling the signature of %s: %w", d, err)
			}
			if err := p.Push(ctx, out.Sig, img); err != nil {
				return fmt.Errorf("writing the signature of %s to %s: %w", d, out.Sig, err)
			}
			return nil
		})
	}
	if len(envs) > 0 {
		g.Go(func() error {
			// cosign's layout: one image of layers, one layer per envelope.
			att := cosignBase()
			var err error
			for _, e := range envs {
				att, err = mutate.Append(att, mutate.Addendum{
					Layer:       static.NewLayer(e.DSSE, MediaTypeDSSE),
					Annotations: map[string]string{annotationSignature: "", annotationPredicate: e.PredicateType},
				})
				if err != nil {
					return fmt.Errorf("assembling the attestations of %s: %w", d, err)
				}
			}
			if err := p.Push(ctx, out.Att, att); err != nil {
				return fmt.Errorf("writing the attestations of %s to %s: %w", d, out.Att, err)
			}
			return nil
		})
		g.Go(func() error {
			img, err := referrerImage(subject, envs)
			if err != nil {
				return fmt.Errorf("assembling the referrer of %s: %w", d, err)
			}
			rd, err := img.Digest()
			if err != nil {
				return err
			}
			if err := p.Push(ctx, d.Context().Digest(rd.String()), img); err != nil {
				return fmt.Errorf("writing the attestations of %s as a referrer: %w", d, err)
			}
			out.Referrer = rd.String()
			for _, e := range envs {
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

// cosignBase is the empty OCI image cosign builds its tags on.
func cosignBase() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// referrerImage is an OCI artifact of envelopes: artifact type (the
// config's media type, which the fallback index records) DSSE, one layer
// per envelope annotated with its predicate type.
func referrerImage(subject v1.Descriptor, envs []Envelope) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), MediaTypeDSSE)
	for _, e := range envs {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:       static.NewLayer(e.DSSE, MediaTypeDSSE),
			Annotations: map[string]string{AnnotationPredicateType: e.PredicateType},
		})
		if err != nil {
			return nil, err
		}
	}
	subject.Platform, subject.Annotations, subject.URLs = nil, nil, nil
	return mutate.Subject(img, subject).(v1.Image), nil
}
