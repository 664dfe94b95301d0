package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Keyless signing: the signer proves who it is with an OIDC identity token
// (in GitHub Actions, the job's token), Fulcio certifies a fresh key for
// that identity for a few minutes, and every signature carries the
// certificate. Verifiers trust Fulcio's root and check the certificate's
// issuer and identity instead of a key.
const (
	// DefaultFulcio is the public Sigstore certificate authority.
	DefaultFulcio = "https://fulcio.sigstore.dev"
	// Audience is the audience Fulcio accepts identity tokens for.
	Audience = "sigstore"
	// GitHubIssuer is GitHub Actions' OIDC issuer.
	GitHubIssuer = "https://token.actions.githubusercontent.com"

	// annotationCertificate and annotationChain hold a keyless signature's
	// certificate and its chain on the signed layer, as cosign writes them.
	annotationCertificate = "dev.sigstore.cosign/certificate"
	annotationChain       = "dev.sigstore.cosign/chain"
)

// Fulcio's certificate extensions naming the token's issuer: 1.8 (a DER
// UTF8String) since Fulcio 1.x, 1.1 (raw bytes) before it.
var (
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
)

// maxFulcioAnswer bounds Fulcio's answer (a chain of a few certificates).
const maxFulcioAnswer = 1 << 20

// Certificate is the certificate of a keyless signature's key and the
// chain to Fulcio's root, PEM, as cosign's annotations hold them.
type Certificate struct {
	Cert, Chain []byte
}

// Keyless configures NewKeylessSigner.
type Keyless struct {
	// Fulcio is the certificate authority's URL (default DefaultFulcio).
	Fulcio string
	// Token asks for an OIDC identity token, audience Audience (in GitHub
	// Actions, github.IDToken), again at each renewal. The token is sent
	// to Fulcio alone and is never part of an error.
	Token func(ctx context.Context) (string, error)
	// RenewBefore is how long before its certificate expires the signer
	// asks for a new one (default two minutes; Fulcio's last ten).
	RenewBefore time.Duration
	// HTTP is the client for Fulcio (default http.DefaultClient).
	HTTP *http.Client
}

func (o Keyless) renewBefore() time.Duration {
	if o.RenewBefore > 0 {
		return o.RenewBefore
	}
	return 2 * time.Minute
}

// NewKeylessSigner makes a fresh ECDSA P-256 key that never leaves this
// process, proves to Fulcio that it holds it (a signature over the
// token's subject) and returns a Signer whose signatures carry the
// certificate Fulcio issued for the token's identity. Near the
// certificate's expiry the signer does the same again with a new token.
func NewKeylessSigner(ctx context.Context, o Keyless) (*Signer, error) {
	if o.Fulcio == "" {
		o.Fulcio = DefaultFulcio
	}
	if o.HTTP == nil {
		o.HTTP = http.DefaultClient
	}
	if o.Token == nil {
		return nil, errors.New("no OIDC identity token to sign keylessly with")
	}
	k, err := certify(ctx, o)
	if err != nil {
		return nil, err
	}
	return &Signer{id: k.id, issuer: k.issuer, renew: &o, sv: k.sv, pub: k.pub, cert: k.cert, notAfter: k.notAfter}, nil
}

// certified is a fresh key and Fulcio's certificate of it.
type certified struct {
	sv         signature.SignerVerifier
	pub        []byte
	cert       *Certificate
	id, issuer string
	notAfter   time.Time
}

// certify gets a token, makes a key and has Fulcio certify it.
func certify(ctx context.Context, o Keyless) (*certified, error) {
	u, err := url.Parse(o.Fulcio)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("fulcio URL %q is not an http(s) URL: set attest.keyless.fulcio, or leave it out for %s", o.Fulcio, DefaultFulcio)
	}
	token, err := o.Token(ctx)
	if err != nil {
		return nil, err
	}
	sub, err := tokenSubject(token)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a signing key: %w", err)
	}
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading the signing key: %w", err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	proof, err := sv.SignMessage(strings.NewReader(sub), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing the proof of possession: %w", err)
	}
	cert, err := signingCert(ctx, o, u, token, pub, proof)
	if err != nil {
		return nil, err
	}
	leaf, err := parseLeaf(cert.Cert)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate from %s: %w", u.Host, err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("the certificate from %s is not for the key it was asked to certify", u.Host)
	}
	ids := identities(leaf)
	if len(ids) == 0 {
		return nil, fmt.Errorf("the certificate from %s names no identity", u.Host)
	}
	return &certified{sv: sv, pub: pub, cert: cert, id: ids[0], issuer: certIssuer(leaf), notAfter: leaf.NotAfter}, nil
}

// tokenSubject reads the sub claim of a JWT without verifying it: Fulcio
// verifies the token; the subject is only what the proof of possession
// signs.
func tokenSubject(token string) (string, error) {
	if token == "" {
		return "", errors.New("no OIDC identity token to sign keylessly with")
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.EdDSA})
	if err != nil {
		return "", errors.New("the OIDC identity token is not a signed JWT")
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || c.Subject == "" {
		return "", errors.New("the OIDC identity token names no subject")
	}
	return c.Subject, nil
}

// signingCert asks Fulcio (POST /api/v2/signingCert) for a certificate of
// pub, proven by proof, for the token's identity.
func signingCert(ctx context.Context, o Keyless, u *url.URL, token string, pub, proof []byte) (*Certificate, error) {
	body, err := json.Marshal(map[string]any{
		"credentials": map[string]string{"oidcIdentityToken": token},
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]string{"algorithm": "ECDSA", "content": string(pub)},
			"proofOfPossession": proof, // bytes: base64, as protobuf's JSON wants
		},
	})
	if err != nil {
		return nil, err
	}
	endpoint := u.JoinPath("api", "v2", "signingCert")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := o.HTTP.Do(req)
	if err != nil {
		// A transport error names the URL, which holds no secret (the
		// token is in the body).
		return nil, fmt.Errorf("asking %s for a signing certificate: %w", u.Host, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxFulcioAnswer))
	if err != nil {
		return nil, fmt.Errorf("asking %s for a signing certificate: %w", u.Host, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		msg := strings.ReplaceAll(e.Message, token, "[redacted]")
		return nil, fmt.Errorf("asking %s for a signing certificate: it answered %s: %s: check attest.keyless.fulcio and that the token's issuer is one it trusts", u.Host, resp.Status, msg)
	}
	type chain struct {
		Certificates []string `json:"certificates"`
	}
	var ans struct {
		Detached *struct {
			Chain chain `json:"chain"`
		} `json:"signedCertificateDetachedSct"`
		Embedded *struct {
			Chain chain `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", u.Host, err)
	}
	var certs []string
	switch {
	case ans.Embedded != nil:
		certs = ans.Embedded.Chain.Certificates
	case ans.Detached != nil:
		certs = ans.Detached.Chain.Certificates
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("the answer of %s holds no certificate", u.Host)
	}
	c := &Certificate{Cert: []byte(certs[0])}
	for _, p := range certs[1:] {
		c.Chain = append(c.Chain, []byte(strings.TrimRight(p, "\n")+"\n")...)
	}
	return c, nil
}

func parseLeaf(p []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(p)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// identities are the certificate's subject alternative names: for GitHub
// Actions, the URI of the job's workflow at its ref.
func identities(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return append(out, c.EmailAddresses...)
}

// certIssuer is the OIDC issuer Fulcio wrote into the certificate.
func certIssuer(c *x509.Certificate) string {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(oidIssuerV2) {
			var s string
			if _, err := asn1.Unmarshal(ext.Value, &s); err == nil {
				return s
			}
		}
	}
	for _, ext := range c.Extensions {
		if ext.Id.Equal(oidIssuerV1) {
			return string(ext.Value)
		}
	}
	return ""
}

// KeylessPolicy is who a keyless signature must come from.
type KeylessPolicy struct {
	// Roots are the PEM certificates of the Fulcio roots to trust.
	Roots []byte
	// Issuer is the OIDC issuer the certificate must name, e.g.
	// GitHubIssuer; Identity the exact identity, e.g.
	// https://github.com/OWNER/REPO/.github/workflows/ci.yml@refs/heads/main.
	Issuer, Identity string
	// IdentityRegexp, instead of Identity, is a regular expression the
	// whole identity must match, e.g. for a workflow signing on every tag
	// https://github\.com/OWNER/REPO/\.github/workflows/release\.yml@refs/tags/v.*
	IdentityRegexp string
}

// Wants says which identity the policy takes, for messages.
func (p KeylessPolicy) Wants() string {
	if p.IdentityRegexp != "" {
		return "an identity matching " + p.IdentityRegexp
	}
	return p.Identity
}

// Matches reports whether the policy takes identity id.
func (p KeylessPolicy) Matches(id string) (bool, error) {
	if p.IdentityRegexp == "" {
		return id == p.Identity, nil
	}
	re, err := regexp.Compile("^(?:" + p.IdentityRegexp + ")$")
	if err != nil {
		return false, fmt.Errorf("identity regexp %q: %w", p.IdentityRegexp, err)
	}
	return re.MatchString(id), nil
}

// NewKeylessVerifier checks signatures by their certificates: issued under
// one of the roots, for the issuer and identity.
func NewKeylessVerifier(p KeylessPolicy) (*Verifier, error) {
	if p.Issuer == "" || (p.Identity == "") == (p.IdentityRegexp == "") {
		return nil, errors.New("a keyless policy needs the issuer and one identity (or identity regexp) signatures must carry")
	}
	if _, err := p.Matches(""); err != nil {
		return nil, err
	}
	roots, err := cryptoutils.UnmarshalCertificatesFromPEM(p.Roots)
	if err != nil || len(roots) == 0 {
		return nil, errors.New("the Fulcio root holds no PEM certificate: give the root certificate of the Fulcio that issues the signing certificates")
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &Verifier{roots: pool, keyless: p, id: "identity " + p.Wants() + " (issuer " + p.Issuer + ")"}, nil
}

// Keyless reports whether v checks certificates rather than a key.
func (v *Verifier) Keyless() bool { return v.roots != nil }

// certVerifier checks that c was issued under v's roots for v's issuer and
// identity, and returns a verifier of its key. The chain is checked as of
// the certificate's issue: it lives minutes, and without a transparency
// log entry nothing proves a later time (docs/attestations.md).
func (v *Verifier) certVerifier(c *Certificate) (signature.Verifier, error) {
	if c == nil || len(c.Cert) == 0 {
		return nil, errors.New("it carries no certificate: it was signed with a key, and the policy wants a keyless signature by " + v.keyless.Wants())
	}
	leaf, err := parseLeaf(c.Cert)
	if err != nil {
		return nil, fmt.Errorf("reading its certificate: %w", err)
	}
	inter := x509.NewCertPool()
	if len(c.Chain) > 0 {
		chain, err := cryptoutils.UnmarshalCertificatesFromPEM(c.Chain)
		if err != nil {
			return nil, fmt.Errorf("reading its certificate chain: %w", err)
		}
		for _, ic := range chain {
			inter.AddCert(ic)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: v.roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}); err != nil {
		return nil, fmt.Errorf("its certificate (for %s) was not issued under the trusted Fulcio root", strings.Join(identities(leaf), ", "))
	}
	if iss := certIssuer(leaf); iss != v.keyless.Issuer {
		return nil, fmt.Errorf("its certificate names issuer %q, not %s", iss, v.keyless.Issuer)
	}
	ids := identities(leaf)
	if !slices.ContainsFunc(ids, func(id string) bool { ok, _ := v.keyless.Matches(id); return ok }) {
		return nil, fmt.Errorf("its certificate names identity %s, not %s", strings.Join(ids, ", "), v.keyless.Wants())
	}
	sv, err := signature.LoadVerifier(leaf.PublicKey, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading its certificate's key: %w", err)
	}
	return sv, nil
}
