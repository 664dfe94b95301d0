package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// ErrBadSignature means a signature does not verify with the key: the
// signed bytes were changed, or another key signed them.
var ErrBadSignature = errors.New("signature does not verify with the key")

// Sign wraps an in-toto statement in a DSSE envelope signed by s.
func (s *Signer) Sign(ctx context.Context, statement []byte) ([]byte, error) {
	env, _, err := s.sign(ctx, statement)
	return env, err
}

// sign is Sign, with the certificate of the key that signed (keyless).
func (s *Signer) sign(ctx context.Context, statement []byte) ([]byte, *Certificate, error) {
	sv, cert, err := s.key(ctx)
	if err != nil {
		return nil, nil, err
	}
	env, err := dsse.WrapSigner(sv, PayloadType).SignMessage(bytes.NewReader(statement), options.WithContext(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("signing a statement: %w", err)
	}
	return env, cert, nil
}

// SignImage makes cosign's simple-signing payload for the image d and its
// signature (base64), which `cosign verify --key` checks.
func (s *Signer) SignImage(ctx context.Context, d name.Digest) (payloadJSON []byte, sig string, err error) {
	is, err := s.signImage(ctx, d)
	if err != nil {
		return nil, "", err
	}
	return is.Payload, is.Sig, nil
}

// signImage is SignImage, with the certificate of the key that signed.
func (s *Signer) signImage(ctx context.Context, d name.Digest) (*ImageSignature, error) {
	payloadJSON, err := json.Marshal(payload.Cosign{Image: d})
	if err != nil {
		return nil, fmt.Errorf("encoding the signature payload of %s: %w", d, err)
	}
	sv, cert, err := s.key(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := sv.SignMessage(bytes.NewReader(payloadJSON), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", d, err)
	}
	return &ImageSignature{Payload: payloadJSON, Sig: base64.StdEncoding.EncodeToString(raw), Cert: cert}, nil
}

// Open verifies a DSSE envelope with v and returns the statement it holds.
// A bad signature is ErrBadSignature.
func (v *Verifier) Open(ctx context.Context, envelope []byte) ([]byte, error) {
	return v.OpenSigned(ctx, envelope, nil)
}

// OpenSigned is Open for an envelope that came with a certificate (a
// keyless signature): a keyless verifier checks the certificate first, and
// a certificate that does not hold is an error other than ErrBadSignature.
func (v *Verifier) OpenSigned(ctx context.Context, envelope []byte, cert *Certificate) ([]byte, error) {
	sv, err := v.verifierFor(cert)
	if err != nil {
		return nil, err
	}
	var env ssldsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("envelope payload type %q, want %s", env.PayloadType, PayloadType)
	}
	ev, err := ssldsse.NewEnvelopeVerifier(&dsse.VerifierAdapter{SignatureVerifier: sv})
	if err != nil {
		return nil, fmt.Errorf("checking an envelope: %w", err)
	}
	if _, err := ev.Verify(ctx, &env); err != nil {
		return nil, ErrBadSignature
	}
	return env.DecodeB64Payload()
}

// VerifyImage checks a simple-signing payload and its signature for d.
func (v *Verifier) VerifyImage(ctx context.Context, d name.Digest, payloadJSON []byte, sig string) error {
	return v.VerifySignature(ctx, d, &ImageSignature{Payload: payloadJSON, Sig: sig})
}

// VerifySignature checks cosign's signature of d, with the certificate it
// carries when keyless.
func (v *Verifier) VerifySignature(ctx context.Context, d name.Digest, is *ImageSignature) error {
	sv, err := v.verifierFor(is.Cert)
	if err != nil {
		return err
	}
	payloadJSON, sig := is.Payload, is.Sig
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("signature of %s is not base64: %w", d, err)
	}
	if err := sv.VerifySignature(bytes.NewReader(raw), bytes.NewReader(payloadJSON), options.WithContext(ctx)); err != nil {
		return ErrBadSignature
	}
	var p payload.Cosign
	if err := json.Unmarshal(payloadJSON, &p); err != nil {
		return fmt.Errorf("signature payload of %s: %w", d, err)
	}
	if p.Image.DigestStr() != d.DigestStr() {
		return fmt.Errorf("the signature is for %s, not %s", p.Image.DigestStr(), d.DigestStr())
	}
	return nil
}

// Unsigned is a statement to sign, with its predicate type.
type Unsigned struct {
	PredicateType string
	Statement     []byte
}

// SignAndAttach signs each statement into an envelope, signs the image
// itself, and attaches all of it to d (see Attach).
func (s *Signer) SignAndAttach(ctx context.Context, r Registry, d name.Digest, desc v1.Descriptor, stmts []Unsigned) (*Attached, error) {
	envs, img, err := s.signWithImage(ctx, d, stmts)
	if err != nil {
		return nil, err
	}
	return Attach(ctx, r, d, desc, envs, img)
}

// signWithImage signs each statement into an envelope and signs the image.
func (s *Signer) signWithImage(ctx context.Context, d name.Digest, stmts []Unsigned) ([]Envelope, *ImageSignature, error) {
	envs, err := s.signAll(ctx, stmts)
	if err != nil {
		return nil, nil, err
	}
	img, err := s.signImage(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	return envs, img, nil
}

// SignAndStage signs each statement and the image itself and uploads them
// for d, attaching nothing yet (see Stage); Finish attaches them.
func (s *Signer) SignAndStage(ctx context.Context, r Registry, d name.Digest, desc v1.Descriptor, stmts []Unsigned) (*Staged, error) {
	envs, img, err := s.signWithImage(ctx, d, stmts)
	if err != nil {
		return nil, err
	}
	return Stage(ctx, r, d, desc, envs, img)
}

// Finish signs the statements that had to wait and attaches them with
// everything staged.
func (s *Signer) Finish(ctx context.Context, st *Staged, stmts []Unsigned) (*Attached, error) {
	envs, err := s.signAll(ctx, stmts)
	if err != nil {
		return nil, err
	}
	return st.Attach(ctx, envs)
}

func (s *Signer) signAll(ctx context.Context, stmts []Unsigned) ([]Envelope, error) {
	envs := make([]Envelope, 0, len(stmts))
	for _, st := range stmts {
		env, cert, err := s.sign(ctx, st.Statement)
		if err != nil {
			return nil, err
		}
		envs = append(envs, Envelope{PredicateType: st.PredicateType, DSSE: env, Cert: cert})
	}
	return envs, nil
}
