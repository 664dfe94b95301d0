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
	// AnnotationPredicateType names a referrer's predicate type.
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
	Att       name.Tag // cosign's attestations tag, sha256-HEX.att
	Sig       name.Tag // cosign's signature tag, sha256-HEX.sig
	Referrers []Referrer
}

// Referrer is one attestation written as an OCI referrer of the image.
type Referrer struct {
	PredicateType string
	Digest        string // the referrer manifest's digest
}

// Attach writes the envelopes and the signature for the image d in both
// layouts: cosign's tags (so `cosign verify-attestation` and `cosign verify`
// find them) and one OCI referrer per envelope, whose subject is d
// (go-containerregistry maintains the fallback tag sha256-HEX where the
// registry has no referrers API). The `.att` and `.sig` tags are replaced,
// not appended to: they hold this push's proofs. Referrers of one subject
// are written one after another: the fallback tag is read, changed and
// written back.
func Attach(ctx context.Context, opts []remote.Option, d name.Digest, envs []Envelope, sig *ImageSignature) (*Attached, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("attaching to %s: %w", d, err)
	}
	opts = append(append([]remote.Option{}, opts...), remote.WithContext(ctx))
	tagBase := d.Context().Tag(strings.Replace(h.String(), ":", "-", 1))
	out := &Attached{
		Att: d.Context().Tag(tagBase.TagStr() + ".att"),
		Sig: d.Context().Tag(tagBase.TagStr() + ".sig"),
	}
	// cosign's layout: one image of layers, one layer per envelope.
	att := cosignBase()
	for _, e := range envs {
		att, err = mutate.Append(att, mutate.Addendum{
			Layer:       static.NewLayer(e.DSSE, MediaTypeDSSE),
			Annotations: map[string]string{annotationSignature: "", annotationPredicate: e.PredicateType},
		})
		if err != nil {
			return nil, fmt.Errorf("assembling the attestations of %s: %w", d, err)
		}
	}
	if len(envs) > 0 {
		if err := remote.Write(out.Att, att, opts...); err != nil {
			return nil, fmt.Errorf("writing the attestations of %s to %s: %w", d, out.Att, err)
		}
	}
	if sig != nil {
		img, err := mutate.Append(cosignBase(), mutate.Addendum{
			Layer:       static.NewLayer(sig.Payload, mediaTypeSimpleSigning),
			Annotations: map[string]string{annotationSignature: sig.Sig},
		})
		if err != nil {
			return nil, fmt.Errorf("assembling the signature of %s: %w", d, err)
		}
		if err := remote.Write(out.Sig, img, opts...); err != nil {
			return nil, fmt.Errorf("writing the signature of %s to %s: %w", d, out.Sig, err)
		}
	}
	// OCI referrers: one artifact per envelope, its subject the image.
	subject, err := remote.Head(d, opts...)
	if err != nil {
		return nil, fmt.Errorf("reading %s to attach to it: %w", d, err)
	}
	for _, e := range envs {
		img, err := referrerImage(*subject, e)
		if err != nil {
			return nil, fmt.Errorf("assembling a referrer of %s: %w", d, err)
		}
		rd, err := img.Digest()
		if err != nil {
			return nil, err
		}
		if err := remote.Write(d.Context().Digest(rd.String()), img, opts...); err != nil {
			return nil, fmt.Errorf("writing the %s attestation of %s as a referrer: %w", KindOf(e.PredicateType), d, err)
		}
		out.Referrers = append(out.Referrers, Referrer{PredicateType: e.PredicateType, Digest: rd.String()})
	}
	return out, nil
}

// cosignBase is the empty OCI image cosign builds its tags on.
func cosignBase() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// referrerImage is an OCI artifact of one envelope: artifact type (the
// config's media type, which the fallback index records) DSSE, the
// envelope as its only layer, the predicate type as an annotation.
func referrerImage(subject v1.Descriptor, e Envelope) (v1.Image, error) {
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), MediaTypeDSSE)
	img, err := mutate.Append(base, mutate.Addendum{Layer: static.NewLayer(e.DSSE, MediaTypeDSSE)})
	if err != nil {
		return nil, err
	}
	img = mutate.Annotations(img, map[string]string{AnnotationPredicateType: e.PredicateType}).(v1.Image)
	subject.Platform, subject.Annotations, subject.URLs = nil, nil, nil
	return mutate.Subject(img, subject).(v1.Image), nil
}
