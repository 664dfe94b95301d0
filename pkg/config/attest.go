package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Attest is what proofs travel with pushed images (docs/attestations.md).
type Attest struct {
	// SBOM is the SBOM format the scan writes and Push attaches:
	// cyclonedx (default), spdx-json, or none.
	SBOM string `yaml:"sbom"`
	// Require lists the attestations Verify (and promotion) demand of an
	// image: provenance, tested, sbom (default: all that are made).
	Require []string `yaml:"require"`
	// PublicKey is the cosign.pub Verify checks signatures with, a path in
	// the repository (HOIST_VERIFY_KEY overrides it).
	PublicKey string `yaml:"public_key"`
	// Keyless signs with the CI's OIDC identity instead of a key, and
	// makes Verify and promotion check that identity
	// (docs/attestations.md).
	Keyless *Keyless `yaml:"keyless"`
	Line    int      `yaml:"-"`
}

// Keyless names the identity keyless signatures must carry, the Fulcio
// that certifies it and the root to trust.
type Keyless struct {
	// Issuer is the OIDC issuer, e.g. https://token.actions.githubusercontent.com.
	Issuer string `yaml:"issuer"`
	// Identity is the workflow identity, e.g.
	// https://github.com/OWNER/REPO/.github/workflows/ci.yml@refs/heads/main.
	Identity string `yaml:"identity"`
	// IdentityRegexp, instead of Identity, is a regular expression the
	// whole identity must match (a workflow signing on every tag).
	IdentityRegexp string `yaml:"identity_regexp"`
	// Fulcio is the certificate authority's URL (empty: the public
	// Sigstore one, https://fulcio.sigstore.dev).
	Fulcio string `yaml:"fulcio"`
	// Root is the Fulcio root certificate (PEM) Verify trusts, a path in
	// the repository.
	Root string `yaml:"root"`
}

// SBOM formats of attest.sbom.
const (
	SBOMCycloneDX = "cyclonedx"
	SBOMSPDX      = "spdx-json"
	SBOMNone      = "none"
)

// Attestation kinds of attest.require.
var attestKinds = []string{"provenance", "tested", "sbom"}

func (c *Config) attestDefaults() {
	if c.Attest.SBOM == "" {
		c.Attest.SBOM = SBOMCycloneDX
	}
	if c.Attest.Require == nil {
		c.Attest.Require = []string{"provenance", "tested"}
		if c.Attest.SBOM != SBOMNone {
			c.Attest.Require = append(c.Attest.Require, "sbom")
		}
	}
}

func (c *Config) validateAttest() error {
	e := func(f string, a ...any) error {
		return &Error{File: c.File, Line: c.Attest.Line, Msg: fmt.Sprintf(f, a...)}
	}
	switch c.Attest.SBOM {
	case SBOMCycloneDX, SBOMSPDX, SBOMNone:
	default:
		return e("attest sbom %q: use %s, %s or %s", c.Attest.SBOM, SBOMCycloneDX, SBOMSPDX, SBOMNone)
	}
	for _, k := range c.Attest.Require {
		if !slices.Contains(attestKinds, k) {
			return e("attest require %q: use %s", k, strings.Join(attestKinds, ", "))
		}
		if k == "sbom" && c.Attest.SBOM == SBOMNone {
			return e("attest require lists sbom but attest sbom is none: choose %s or %s, or drop sbom from require", SBOMCycloneDX, SBOMSPDX)
		}
	}
	if k := c.Attest.Keyless; k != nil {
		if c.Attest.PublicKey != "" {
			return e("attest sets both public_key and keyless: choose one way of signing (a key, or the CI's OIDC identity)")
		}
		if !httpURL(k.Issuer) {
			return e("attest keyless issuer %q: write the OIDC issuer's URL, e.g. https://token.actions.githubusercontent.com", k.Issuer)
		}
		switch {
		case k.Identity != "" && k.IdentityRegexp != "":
			return e("attest keyless sets both identity and identity_regexp: choose one")
		case k.IdentityRegexp != "":
			if _, err := regexp.Compile(k.IdentityRegexp); err != nil {
				return e("attest keyless identity_regexp %q: %v", k.IdentityRegexp, err)
			}
		case !httpURL(k.Identity):
			return e("attest keyless identity %q: write the workflow identity, e.g. https://github.com/OWNER/REPO/.github/workflows/ci.yml@refs/heads/main (or identity_regexp)", k.Identity)
		}
		if k.Fulcio != "" && !httpURL(k.Fulcio) {
			return e("attest keyless fulcio %q: write the Fulcio URL, or leave it out for the public Sigstore one", k.Fulcio)
		}
	}
	return nil
}

// httpURL reports whether s is an absolute http(s) URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// keylessRoot is attest.keyless.root, or "" without keyless.
func (c *Config) keylessRoot() string {
	if c.Attest.Keyless == nil {
		return ""
	}
	return c.Attest.Keyless.Root
}
