package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PEM block types of cosign's encrypted private keys: cosign writes the
// first since v2.2 and still reads the second.
const (
	sigstoreKeyType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	cosignKeyType   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// ErrWrongPassword means the signing key did not decrypt with the password.
var ErrWrongPassword = errors.New("the signing key does not decrypt with the password given")

// Signer signs statements and images with one ECDSA P-256 key: a key
// file's, or a fresh key Fulcio certified (NewKeylessSigner), whose
// certificate then goes with every signature.
type Signer struct {
	id string // the key's id, or the certificate's identity
	// issuer and renew are set for a keyless signer: renew asks Fulcio for
	// a fresh key's certificate when the current one is about to expire.
	issuer string
	renew  *Keyless

	mu       sync.Mutex
	sv       signature.SignerVerifier
	pub      []byte // PEM
	cert     *Certificate
	notAfter time.Time
}

// key is the key to sign with and its certificate (nil for a key file),
// renewed first when the certificate would expire within the renewal
// margin: a push longer than a certificate's ten minutes keeps signing
// with certificates that are valid when it signs.
func (s *Signer) key(ctx context.Context) (signature.SignerVerifier, *Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renew != nil && time.Until(s.notAfter) < s.renew.renewBefore() {
		k, err := certify(ctx, *s.renew)
		if err != nil {
			return nil, nil, fmt.Errorf("renewing the signing certificate: %w", err)
		}
		if k.id != s.id {
			return nil, nil, fmt.Errorf("renewing the signing certificate: it names %s, not %s", k.id, s.id)
		}
		s.sv, s.pub, s.cert, s.notAfter = k.sv, k.pub, k.cert, k.notAfter
	}
	return s.sv, s.cert, nil
}

// LoadSigner reads a private key in cosign's format (PKCS#8 encrypted with
// scrypt and secretbox, as `cosign generate-key-pair` writes it). The
// password is never part of an error.
func LoadSigner(keyPEM, password []byte) (*Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("the signing key is not PEM: give the cosign.key file `cosign generate-key-pair` wrote")
	}
	if block.Type != sigstoreKeyType && block.Type != cosignKeyType {
		return nil, fmt.Errorf("the signing key is a %q PEM block, not an encrypted cosign key: give the cosign.key file `cosign generate-key-pair` wrote", block.Type)
	}
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		return nil, ErrWrongPassword
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("reading the decrypted signing key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("the signing key is not an ECDSA P-256 key: make one with `cosign generate-key-pair`")
	}
	sv, err := signature.LoadECDSASignerVerifier(ec, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading the signing key: %w", err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(ec.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return &Signer{sv: sv, pub: pub, id: keyID(ec.Public())}, nil
}

// PublicKeyPEM is the public half, as cosign.pub holds it (for a keyless
// signer, the current key's).
func (s *Signer) PublicKeyPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub
}

// KeyID names the key in output: sha256 of its public key, shortened; for
// a keyless signer, the identity its certificate names.
func (s *Signer) KeyID() string { return s.id }

// Certificate is a keyless signer's current certificate and chain (nil
// for a key).
func (s *Signer) Certificate() *Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert
}

// Describe says who signs, for output: "key sha256:…", or "certificate
// for IDENTITY (issuer ISSUER)".
func (s *Signer) Describe() string {
	if s.renew != nil {
		return "certificate for " + s.id + " (issuer " + s.issuer + ")"
	}
	return "key " + s.id
}

// Verifier checks signatures made with one public key, or (keyless) made
// by keys whose certificates chain to trusted roots and name one issuer
// and identity.
type Verifier struct {
	v  signature.Verifier
	id string
	// roots and keyless are set for a keyless verifier.
	roots   *x509.CertPool
	keyless KeylessPolicy
}

// LoadVerifier reads a PEM public key (cosign.pub).
func LoadVerifier(pubPEM []byte) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return nil, fmt.Errorf("reading the public key: %w: give the cosign.pub file `cosign generate-key-pair` wrote", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("the public key is not an ECDSA P-256 key: give the cosign.pub of the signing key")
	}
	v, err := signature.LoadECDSAVerifier(ec, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading the public key: %w", err)
	}
	return &Verifier{v: v, id: keyID(ec)}, nil
}

// KeyID names the key in output (see Signer.KeyID); for a keyless
// verifier, the identity and issuer it wants.
func (v *Verifier) KeyID() string { return v.id }

// signedBy says whom v accepts, for messages: "key sha256:…" or
// "identity … (issuer …)".
func (v *Verifier) signedBy() string {
	if v.Keyless() {
		return v.id
	}
	return "key " + v.id
}

// verifierFor is the verifier of a signature that came with cert: v's key,
// or (keyless) the key of cert once cert is checked against the policy.
// A key verifier ignores certificates, as cosign --key does.
func (v *Verifier) verifierFor(cert *Certificate) (signature.Verifier, error) {
	if v.Keyless() {
		return v.certVerifier(cert)
	}
	return v.v, nil
}

// GenerateKey makes an ECDSA P-256 key pair in cosign's format: the private
// key encrypted with password, and the public key.
func GenerateKey(password []byte) (privPEM, pubPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the key: %w", err)
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, nil, fmt.Errorf("encrypting the key: %w", err)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: sigstoreKeyType, Bytes: enc}), pubPEM, nil
}

func keyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:8])
}
