package attest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestStatementIsInToto: every statement reads back through the in-toto
// library as a valid Statement v1 about its subject, and an SBOM goes in as
// the predicate byte for byte. A predicate that is not a JSON object, and a
// subject that is not a sha256 digest, are refused.
func TestStatementIsInToto(t *testing.T) {
	sub := Subject{Name: "registry.example/team/app", Digest: "sha256:" + strings.Repeat("ab", 32)}
	sbom := []byte("{\n  \"bomFormat\": \"CycloneDX\",\n  \"components\": [{\"name\": \"z\"}, {\"name\": \"a\"}]\n}\n")
	tested, err := TestedStatement(sub, Tested{Image: "app", Test: &TestResult{Passed: true}})
	if err != nil {
		t.Fatal(err)
	}
	bom, err := SBOMStatement(sub, SBOMCycloneDX, sbom)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tested": tested, "sbom": bom} {
		var st intoto.Statement
		if err := protojson.Unmarshal(b, &st); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		if err := st.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Type != intoto.StatementTypeUri || len(st.Subject) != 1 || st.Subject[0].Name != sub.Name || st.Subject[0].Digest["sha256"] != strings.Repeat("ab", 32) {
			t.Fatalf("%s: statement %v", name, &st)
		}
	}
	var raw struct {
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(bom, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.PredicateType != PredicateCycloneDX || !bytes.Equal(raw.Predicate, bytes.TrimSpace(sbom)) {
		t.Fatalf("SBOM statement %s carries %q, want the document as it is", raw.PredicateType, raw.Predicate)
	}
	for _, bad := range []string{`["not", "an", "object"]`, `"text"`, `{"unterminated": `, ``} {
		if _, err := SBOMStatement(sub, SBOMCycloneDX, []byte(bad)); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Errorf("predicate %q: err = %v", bad, err)
		}
	}
	if _, err := SBOMStatement(Subject{Name: "x", Digest: "md5:00"}, SBOMCycloneDX, sbom); err == nil {
		t.Error("a subject with an md5 digest was accepted")
	}
}
