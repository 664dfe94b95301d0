package config

import (
	"slices"
	"testing"
)

// TestAttestDefaults: with no attest section every image gets a CycloneDX
// SBOM and verify requires all three attestations; sbom: none drops the SBOM
// from what is required.
func TestAttestDefaults(t *testing.T) {
	tests := []struct {
		name     string
		attest   string
		sbom     string
		required []string
	}{
		{name: "none given", sbom: SBOMCycloneDX, required: []string{"provenance", "tested", "sbom"}},
		{name: "spdx", attest: "attest: {sbom: spdx-json}\n", sbom: SBOMSPDX, required: []string{"provenance", "tested", "sbom"}},
		{name: "no sbom", attest: "attest: {sbom: none}\n", sbom: SBOMNone, required: []string{"provenance", "tested"}},
		{name: "explicit", attest: "attest: {require: [tested], public_key: cosign.pub}\n", sbom: SBOMCycloneDX, required: []string{"tested"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("hoist.yaml", repo(t), []byte("project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\n"+tt.attest))
			if err != nil {
				t.Fatal(err)
			}
			if c.Attest.SBOM != tt.sbom || !slices.Equal(c.Attest.Require, tt.required) {
				t.Fatalf("attest = %+v, want sbom %s, require %v", c.Attest, tt.sbom, tt.required)
			}
		})
	}
}
