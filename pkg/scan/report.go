package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Report is the part of Trivy's JSON report (SchemaVersion 2) that Hoist
// reads. The file Trivy wrote is kept as it is; this is only its reading.
type Report struct {
	SchemaVersion int       `json:"SchemaVersion"`
	CreatedAt     time.Time `json:"CreatedAt"`
	ArtifactName  string    `json:"ArtifactName"`
	ArtifactType  string    `json:"ArtifactType"`
	Metadata      struct {
		OS *struct {
			Family string `json:"Family"`
			Name   string `json:"Name"`
			EOSL   bool   `json:"EOSL"`
		} `json:"OS"`
		ImageID  string   `json:"ImageID"`
		DiffIDs  []string `json:"DiffIDs"`
		RepoTags []string `json:"RepoTags"`
	} `json:"Metadata"`
	Results []TargetResult `json:"Results"`
}

// TargetResult is one scanned target inside the image: the OS packages, one
// language lock file or binary, or one file with secrets.
type TargetResult struct {
	Target          string          `json:"Target"`
	Class           string          `json:"Class"`
	Type            string          `json:"Type"`
	Vulnerabilities []Vulnerability `json:"Vulnerabilities"`
	Secrets         []Secret        `json:"Secrets"`
}

// Vulnerability is one advisory matching one installed package.
type Vulnerability struct {
	VulnerabilityID  string `json:"VulnerabilityID"`
	PkgName          string `json:"PkgName"`
	PkgPath          string `json:"PkgPath"`
	InstalledVersion string `json:"InstalledVersion"`
	FixedVersion     string `json:"FixedVersion"`
	Status           string `json:"Status"`
	Severity         string `json:"Severity"`
	Title            string `json:"Title"`
	PrimaryURL       string `json:"PrimaryURL"`
}

// Secret is one secret found in a file. Trivy masks the secret itself; Hoist
// never copies the matched text anywhere.
type Secret struct {
	RuleID    string `json:"RuleID"`
	Category  string `json:"Category"`
	Severity  string `json:"Severity"`
	Title     string `json:"Title"`
	StartLine int    `json:"StartLine"`
}

// ParseReport reads a Trivy JSON report. A report that is not one (wrong
// schema, no artifact) is an error, never an empty pass.
func ParseReport(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("not a Trivy JSON report: %w", err)
	}
	if r.SchemaVersion != 2 {
		return nil, fmt.Errorf("trivy report schema %d, Hoist reads 2: use the pinned Trivy", r.SchemaVersion)
	}
	if r.ArtifactName == "" {
		return nil, errors.New("trivy report names no artifact: the scan did not run")
	}
	return &r, nil
}

// Kinds of finding.
const (
	KindVulnerability = "vulnerability"
	KindSecret        = "secret"
)

// Finding is one vulnerability or secret in one image, with what the
// policy made of it.
type Finding struct {
	Kind      string `json:"kind"`
	ID        string `json:"id"`      // CVE/GHSA ID, or the secret rule ID
	Package   string `json:"package"` // package name, or for a secret the file
	Installed string `json:"installed,omitempty"`
	Fixed     string `json:"fixed,omitempty"`
	Severity  string `json:"severity"`
	Title     string `json:"title,omitempty"`
	Target    string `json:"target"`         // what Trivy scanned: OS, lock file, binary or file
	Path      string `json:"path,omitempty"` // language packages: the file the package was found in
	URL       string `json:"url,omitempty"`
	Line      int    `json:"line,omitempty"` // secrets: the line in the file

	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason,omitempty"` // why it is ignored, or why an ignore no longer applies
}

// Verdict is what the policy decided about a finding.
type Verdict string

// Verdicts.
const (
	Blocking Verdict = "blocking" // breaches the policy
	Ignored  Verdict = "ignored"  // an ignore entry or ignore_unfixed applies
	Below    Verdict = "below"    // severity below the threshold: reported only
)

// Findings flattens a report into findings, in report order.
func (r *Report) Findings() []Finding {
	var out []Finding
	for _, res := range r.Results {
		for _, v := range res.Vulnerabilities {
			pkg := v.PkgName
			out = append(out, Finding{
				Kind: KindVulnerability, ID: v.VulnerabilityID, Package: pkg,
				Installed: v.InstalledVersion, Fixed: v.FixedVersion,
				Severity: normSeverity(v.Severity), Title: v.Title, Target: res.Target, Path: v.PkgPath, URL: v.PrimaryURL,
			})
		}
		for _, s := range res.Secrets {
			out = append(out, Finding{
				Kind: KindSecret, ID: s.RuleID, Package: res.Target,
				Severity: normSeverity(s.Severity), Title: s.Title, Target: res.Target, Line: s.StartLine,
			})
		}
	}
	return out
}

func normSeverity(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if _, ok := severityRank[s]; !ok {
		return "UNKNOWN"
	}
	return s
}

var severityRank = map[string]int{"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
