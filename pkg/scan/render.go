package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/hoistci/hoist/pkg/lock"
)

// writeImageReports writes one image's table, SARIF and Markdown beside
// Trivy's JSON report.
func writeImageReports(dir string, r *ImageResult, res *Result) error {
	base := filepath.Join(dir, r.Name)
	var table strings.Builder
	writeImageTable(&table, *r, true)
	sarif, err := SARIF(*r, res.Scanner)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
	}{
		{base + ".txt", []byte(table.String())},
		{base + ".sarif", sarif},
		{base + ".md", []byte(imageMarkdown(*r, res))},
	}
	for _, f := range files {
		if err := lock.WriteFileAtomic(f.path, f.data); err != nil {
			return fmt.Errorf("writing the report for %s: %w", r.Name, err)
		}
		r.Reports = append(r.Reports, f.path)
	}
	return nil
}

// WriteTable prints the run's outcome for a terminal: per image a status
// line and its blocking and ignored findings, then notices.
func WriteTable(w io.Writer, res *Result) {
	for _, r := range res.Images {
		writeImageTable(w, r, false)
	}
	for _, n := range res.Notices {
		fmt.Fprintln(w, "notice:", n)
	}
}

func status(r ImageResult) string {
	switch {
	case r.Err != nil:
		return "NOT SCANNED"
	case r.Passed():
		return "PASS"
	}
	return "FAIL"
}

func writeImageTable(w io.Writer, r ImageResult, all bool) {
	os := r.OS
	if os == "" {
		os = "no OS detected"
	}
	if r.Err != nil {
		fmt.Fprintf(w, "%-11s %s  %s\n            %v\n", status(r), r.Name, r.Ref, r.Err)
		return
	}
	cached := ""
	if r.Cached {
		cached = ", unchanged: earlier scan reused"
	}
	fmt.Fprintf(w, "%-11s %s  %s  %s  (%d blocking, %d ignored, %d below threshold%s)\n", status(r), r.Name, r.Ref, os, r.count(Blocking), r.count(Ignored), r.count(Below), cached)
	rows := 0
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Findings {
		if f.Verdict == Below && !all {
			continue
		}
		if rows == 0 {
			fmt.Fprintln(tw, "            SEVERITY\tID\tPACKAGE\tINSTALLED\tFIXED\tVERDICT")
		}
		rows++
		pkg, inst, fixed := f.Package, f.Installed, f.Fixed
		if f.Kind == KindSecret {
			pkg, inst, fixed = fmt.Sprintf("%s:%d", f.Package, f.Line), "(secret)", "-"
		}
		if fixed == "" {
			fixed = "-"
		}
		v := string(f.Verdict)
		if f.Reason != "" {
			v += ": " + f.Reason
		}
		fmt.Fprintf(tw, "            %s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.ID, pkg, inst, fixed, v)
	}
	_ = tw.Flush()
}

// Markdown is the run's summary for people and for $GITHUB_STEP_SUMMARY.
func Markdown(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Image scan\n\n%s, %s\n\n", res.Scanner, res.DB)
	b.WriteString("| Image | Result | Blocking | Ignored | Below threshold |\n|---|---|---|---|---|\n")
	for _, r := range res.Images {
		if r.Err != nil {
			fmt.Fprintf(&b, "| %s | %s | - | - | - |\n", mdCell(r.Name), mdStatus(r))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d |\n", mdCell(r.Name), mdStatus(r), r.count(Blocking), r.count(Ignored), r.count(Below))
	}
	var blocking, ignored strings.Builder
	for _, r := range res.Images {
		for _, f := range r.Findings {
			switch f.Verdict {
			case Blocking:
				fmt.Fprintf(&blocking, "| %s | %s | %s | %s | %s | %s |\n", mdCell(r.Name), mdCell(pkgCell(f)), mdCell(f.Installed), mdCell(orDash(f.Fixed)), mdID(f), f.Severity)
			case Ignored:
				fmt.Fprintf(&ignored, "| %s | %s | %s | %s | %s |\n", mdCell(r.Name), mdID(f), mdCell(pkgCell(f)), f.Severity, mdCell(f.Reason))
			}
		}
	}
	if blocking.Len() > 0 {
		b.WriteString("\n### Blocking\n\n| Image | Package | Installed | Fixed | ID | Severity |\n|---|---|---|---|---|---|\n")
		b.WriteString(blocking.String())
	}
	if ignored.Len() > 0 {
		b.WriteString("\n### Ignored\n\n| Image | ID | Package | Severity | Reason |\n|---|---|---|---|---|\n")
		b.WriteString(ignored.String())
	}
	var failed []string
	for _, r := range res.Images {
		if r.Err != nil {
			failed = append(failed, "- "+mdText(r.Err.Error()))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\n### Not scanned\n\n" + strings.Join(failed, "\n") + "\n")
	}
	if len(res.Notices) > 0 {
		b.WriteString("\n### Notices\n\n")
		for _, n := range res.Notices {
			b.WriteString("- " + mdText(n) + "\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}

func imageMarkdown(r ImageResult, res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s: %s\n\n`%s` (%s), %s, %s, %s\n\n", mdCell(r.Name), mdStatus(r), r.Ref, short(r.ImageID), orDash(r.OS), res.Scanner, res.DB)
	if len(r.Findings) == 0 {
		b.WriteString("No findings.\n")
		return b.String()
	}
	b.WriteString("| Severity | ID | Package | Installed | Fixed | Verdict |\n|---|---|---|---|---|---|\n")
	for _, f := range r.Findings {
		v := string(f.Verdict)
		if f.Reason != "" {
			v += ": " + f.Reason
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", f.Severity, mdID(f), mdCell(pkgCell(f)), mdCell(f.Installed), mdCell(orDash(f.Fixed)), mdCell(v))
	}
	return b.String()
}

func mdStatus(r ImageResult) string {
	switch status(r) {
	case "PASS":
		return "✅ pass"
	case "FAIL":
		return "❌ fail"
	}
	return "⚠️ not scanned"
}

func pkgCell(f Finding) string {
	if f.Kind == KindSecret {
		return fmt.Sprintf("secret in %s:%d", f.Package, f.Line)
	}
	return f.Package
}

func mdID(f Finding) string {
	if f.URL != "" && strings.HasPrefix(f.URL, "https://") {
		return fmt.Sprintf("[%s](%s)", mdCell(f.ID), f.URL)
	}
	return mdCell(f.ID)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	return mdText(s)
}

func mdText(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;", "`", "'").Replace(s)
}

// SARIF renders one image's findings as SARIF 2.1.0 for code scanning.
// Ignored findings carry a suppression with the reason.
func SARIF(r ImageResult, scanner string) ([]byte, error) {
	type text struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     text              `json:"shortDescription"`
		FullDescription      text              `json:"fullDescription"`
		HelpURI              string            `json:"helpUri,omitempty"`
		Help                 text              `json:"help"`
		DefaultConfiguration map[string]string `json:"defaultConfiguration"`
		Properties           map[string]any    `json:"properties"`
	}
	type suppression struct {
		Kind          string `json:"kind"`
		Status        string `json:"status"`
		Justification string `json:"justification"`
	}
	type result struct {
		RuleID       string        `json:"ruleId"`
		RuleIndex    int           `json:"ruleIndex"`
		Level        string        `json:"level"`
		Message      text          `json:"message"`
		Locations    []any         `json:"locations"`
		Suppressions []suppression `json:"suppressions,omitempty"`
	}
	var rules []rule
	index := map[string]int{}
	results := []result{}
	for _, f := range r.Findings {
		i, ok := index[f.ID]
		if !ok {
			i = len(rules)
			index[f.ID] = i
			title := f.Title
			if title == "" {
				title = f.ID
			}
			rules = append(rules, rule{
				ID: f.ID, Name: sarifName(f), ShortDescription: text{title}, FullDescription: text{title},
				HelpURI: f.URL, Help: text{fmt.Sprintf("%s %s: %s", f.Kind, f.ID, title)},
				DefaultConfiguration: map[string]string{"level": sarifLevel(f.Severity)},
				Properties: map[string]any{
					"tags":              []string{f.Kind, "security", f.Severity},
					"precision":         "very-high",
					"security-severity": securitySeverity[f.Severity],
				},
			})
		}
		var msg string
		if f.Kind == KindSecret {
			msg = fmt.Sprintf("Image: %s\nSecret: %s (%s)\nFile: %s line %d\nSeverity: %s", r.Ref, f.ID, f.Title, f.Package, f.Line, f.Severity)
		} else {
			msg = fmt.Sprintf("Image: %s\nPackage: %s\nInstalled Version: %s\nVulnerability %s\nSeverity: %s\nFixed Version: %s", r.Ref, f.Package, f.Installed, f.ID, f.Severity, orDash(f.Fixed))
		}
		// Where GitHub shows the alert: the file for secrets and language
		// packages, the image's repository for OS packages.
		uri, line := strings.SplitN(r.Ref, ":", 2)[0], 1
		switch {
		case f.Kind == KindSecret:
			uri = strings.TrimPrefix(f.Package, "/")
		case f.Path != "":
			uri = strings.TrimPrefix(f.Path, "/")
		case !strings.Contains(f.Target, "("):
			uri = strings.TrimPrefix(f.Target, "/")
		}
		if f.Line > 0 {
			line = f.Line
		}
		res := result{
			RuleID: f.ID, RuleIndex: i, Level: sarifLevel(f.Severity), Message: text{msg},
			Locations: []any{map[string]any{
				"physicalLocation": map[string]any{
					"artifactLocation": map[string]string{"uri": uri, "uriBaseId": "ROOTPATH"},
					"region":           map[string]int{"startLine": line, "startColumn": 1, "endLine": line, "endColumn": 1},
				},
				"message": text{r.Ref + ": " + f.Target},
			}},
		}
		if f.Verdict == Ignored {
			res.Suppressions = []suppression{{Kind: "external", Status: "accepted", Justification: f.Reason}}
		}
		results = append(results, res)
	}
	if rules == nil {
		rules = []rule{}
	}
	version := strings.TrimPrefix(scanner, "trivy ")
	doc := map[string]any{
		"version": "2.1.0",
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "Trivy", "fullName": "Trivy Vulnerability Scanner (via Hoist)", "version": version,
				"informationUri": "https://github.com/aquasecurity/trivy", "rules": rules,
			}},
			"automationDetails":  map[string]string{"id": "hoist-scan/" + r.Name + "/"},
			"results":            results,
			"columnKind":         "utf16CodeUnits",
			"originalUriBaseIds": map[string]any{"ROOTPATH": map[string]string{"uri": "file:///"}},
			"properties":         map[string]string{"imageName": r.Ref, "imageID": r.ImageID},
		}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding SARIF for %s: %w", r.Name, err)
	}
	return append(b, '\n'), nil
}

func sarifName(f Finding) string {
	if f.Kind == KindSecret {
		return "Secret"
	}
	if f.Target != "" && strings.Contains(f.Target, "(") {
		return "OsPackageVulnerability"
	}
	return "LanguageSpecificPackageVulnerability"
}

func sarifLevel(sev string) string {
	switch sev {
	case "CRITICAL", "HIGH":
		return "error"
	case "MEDIUM":
		return "warning"
	case "LOW", "UNKNOWN":
		return "note"
	}
	return "none"
}

// securitySeverity is GitHub's numeric severity for code scanning alerts.
var securitySeverity = map[string]string{"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "2.0", "UNKNOWN": "0.0"}
