// Command trivydb writes a small Trivy vulnerability DB in Trivy's real
// format (the trivy-db module Trivy itself reads) from a JSON spec, for tests
// and benchmarks on machines that cannot download the real DB.
//
//	go run ./trivydb -spec spec.json -out DIR
//
// writes DIR/db/trivy.db and DIR/db/metadata.json, so DIR works as Trivy's
// --cache-dir and DIR/db as Hoist's offline DB folder. The spec:
//
//	{"advisories": [{"source": "debian 12", "package": "openssl",
//	  "id": "CVE-2099-0001", "fixed": "3.0.15-1~deb12u1", "severity": "HIGH"}]}
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

// Spec is the DB content.
type Spec struct {
	// UpdatedAt and NextUpdate go into metadata.json; defaults: now and a
	// year from now.
	UpdatedAt  time.Time  `json:"updated_at"`
	NextUpdate time.Time  `json:"next_update"`
	Advisories []Advisory `json:"advisories"`
}

// Advisory is one vulnerable package in one data source.
type Advisory struct {
	// Source is Trivy's bucket for the OS or ecosystem, e.g. "debian 12" or
	// "pip::GitHub Security Advisory pip".
	Source string `json:"source"`
	// SourceID is the data source's ID (default: Source's first word, e.g.
	// debian; use ghsa for language ecosystems).
	SourceID string `json:"source_id"`
	Package  string `json:"package"`
	ID       string `json:"id"`
	Fixed    string `json:"fixed"` // OS packages; empty: not fixed yet
	// Vulnerable and Patched are version ranges, for language packages,
	// e.g. ["<2.31.0"] and ["2.31.0"].
	Vulnerable []string `json:"vulnerable"`
	Patched    []string `json:"patched"`
	Severity   string   `json:"severity"`
	Title      string   `json:"title"`
}

func main() {
	spec := flag.String("spec", "", "JSON spec file")
	out := flag.String("out", "", "output folder (gets db/trivy.db and db/metadata.json)")
	flag.Parse()
	if *spec == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: trivydb -spec FILE -out DIR")
		os.Exit(2)
	}
	if err := run(*spec, *out); err != nil {
		fmt.Fprintln(os.Stderr, "trivydb:", err)
		os.Exit(1)
	}
}

func run(specPath, out string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}
	now := time.Now().UTC()
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = now
	}
	if s.NextUpdate.IsZero() {
		s.NextUpdate = now.AddDate(1, 0, 0)
	}
	dir := filepath.Join(out, "db")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := db.Init(dir); err != nil {
		return err
	}
	dbc := db.Config{}
	err = dbc.BatchUpdate(func(tx *bolt.Tx) error {
		for _, a := range s.Advisories {
			sev, err := types.NewSeverity(strings.ToUpper(a.Severity))
			if err != nil {
				return fmt.Errorf("advisory %s: %w", a.ID, err)
			}
			src := types.SourceID(a.SourceID)
			if src == "" {
				src = types.SourceID(strings.Fields(a.Source)[0])
			}
			if err := dbc.PutDataSource(tx, a.Source, types.DataSource{ID: src, Name: a.Source, URL: "https://example.invalid/" + string(src)}); err != nil {
				return err
			}
			adv := types.Advisory{FixedVersion: a.Fixed, VulnerableVersions: a.Vulnerable, PatchedVersions: a.Patched}
			if err := dbc.PutAdvisory(tx, []string{a.Source, a.Package}, a.ID, adv); err != nil {
				return err
			}
			title := a.Title
			if title == "" {
				title = a.Package + ": test advisory " + a.ID
			}
			v := types.Vulnerability{
				Title:          title,
				Description:    "Advisory made by trivydb for tests.",
				Severity:       sev.String(),
				VendorSeverity: types.VendorSeverity{src: sev},
			}
			if err := dbc.PutVulnerability(tx, a.ID, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	return metadata.NewClient(dir).Update(metadata.Metadata{
		Version:      db.SchemaVersion,
		NextUpdate:   s.NextUpdate,
		UpdatedAt:    s.UpdatedAt,
		DownloadedAt: now,
	})
}
