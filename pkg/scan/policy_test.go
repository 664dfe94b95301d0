package scan

import (
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPolicyApply(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	high := Finding{Kind: KindVulnerability, ID: "CVE-2099-0001", Package: "openssl", Installed: "3.0.11-1~deb12u1", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"}
	unfixed := Finding{Kind: KindVulnerability, ID: "CVE-2099-0002", Package: "zlib1g", Installed: "1:1.2.13", Severity: "CRITICAL"}
	medium := Finding{Kind: KindVulnerability, ID: "CVE-2099-0003", Package: "libc6", Installed: "2.36", Fixed: "2.36-9", Severity: "MEDIUM"}
	secret := Finding{Kind: KindSecret, ID: "aws-access-key-id", Package: "/app/.env", Severity: "CRITICAL", Line: 3}
	tests := []struct {
		name        string
		policy      Policy
		in          Finding
		wantVerdict Verdict
		wantReason  string // substring
		wantNotice  string // substring; empty: no notice
	}{
		{name: "high blocks", policy: Policy{Severity: []string{"HIGH", "CRITICAL"}}, in: high, wantVerdict: Blocking},
		{name: "medium below threshold", policy: Policy{Severity: []string{"HIGH", "CRITICAL"}}, in: medium, wantVerdict: Below},
		{name: "medium blocks when listed", policy: Policy{Severity: []string{"MEDIUM"}}, in: medium, wantVerdict: Blocking},
		{name: "unfixed blocks by default", policy: Policy{Severity: []string{"CRITICAL"}}, in: unfixed, wantVerdict: Blocking},
		{name: "ignore_unfixed accepts unfixed", policy: Policy{Severity: []string{"CRITICAL"}, IgnoreUnfixed: true}, in: unfixed, wantVerdict: Ignored, wantReason: "ignore_unfixed"},
		{name: "ignore_unfixed keeps fixed blocking", policy: Policy{Severity: []string{"HIGH"}, IgnoreUnfixed: true}, in: high, wantVerdict: Blocking},
		{name: "ignored with reason", policy: Policy{Severity: []string{"HIGH"}, Ignore: []Ignore{{ID: "CVE-2099-0001", Reason: "not reachable", Expires: day("2026-12-31"), Where: "hoist.yaml:9"}}}, in: high, wantVerdict: Ignored, wantReason: "not reachable (until 2026-12-31)"},
		{name: "ignore id case-insensitive", policy: Policy{Severity: []string{"HIGH"}, Ignore: []Ignore{{ID: "cve-2099-0001", Reason: "r"}}}, in: high, wantVerdict: Ignored},
		{name: "ignore holds through its expiry day", policy: Policy{Severity: []string{"HIGH"}, Ignore: []Ignore{{ID: "CVE-2099-0001", Reason: "r", Expires: day("2026-11-21")}}}, in: high, wantVerdict: Ignored},
		{name: "expired ignore blocks and says so", policy: Policy{Severity: []string{"HIGH"}, Ignore: []Ignore{{ID: "CVE-2099-0001", Reason: "waiting for 3.0.15", Expires: day("2026-11-20"), Where: "hoist.yaml:12"}}}, in: high, wantVerdict: Blocking, wantReason: "expired on 2026-11-20", wantNotice: "hoist.yaml:12: scan ignore CVE-2099-0001 expired on 2026-11-20"},
		{name: "ignore for another package does not apply", policy: Policy{Severity: []string{"HIGH"}, Ignore: []Ignore{{ID: "CVE-2099-0001", Package: "libssl3", Reason: "r"}}}, in: high, wantVerdict: Blocking},
		{name: "ignore for this package applies", policy: Policy{Severity: []string{"HIGH"}, Ignore: []Ignore{{ID: "CVE-2099-0001", Package: "openssl", Reason: "r"}}}, in: high, wantVerdict: Ignored},
		{name: "secret blocks", policy: Policy{Severity: []string{"CRITICAL"}}, in: secret, wantVerdict: Blocking},
		{name: "secret ignored by rule and file", policy: Policy{Severity: []string{"CRITICAL"}, Ignore: []Ignore{{ID: "aws-access-key-id", Package: "/app/.env", Reason: "test fixture key"}}}, in: secret, wantVerdict: Ignored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := []Finding{tt.in}
			notices, _ := tt.policy.Apply("demo", fs, now)
			if fs[0].Verdict != tt.wantVerdict {
				t.Errorf("verdict %q, want %q", fs[0].Verdict, tt.wantVerdict)
			}
			if !strings.Contains(fs[0].Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", fs[0].Reason, tt.wantReason)
			}
			switch {
			case tt.wantNotice == "" && len(notices) > 0:
				t.Errorf("unexpected notices %q", notices)
			case tt.wantNotice != "" && (len(notices) != 1 || !strings.Contains(notices[0], tt.wantNotice)):
				t.Errorf("notices %q, want one containing %q", notices, tt.wantNotice)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		wantErr string
	}{
		{name: "ok", policy: Policy{Severity: []string{"HIGH"}, Scanners: []string{"vuln", "secret"}}},
		{name: "no severity", policy: Policy{Scanners: []string{"vuln"}}, wantErr: "no severity"},
		{name: "bad severity", policy: Policy{Severity: []string{"high"}, Scanners: []string{"vuln"}}, wantErr: `severity "high"`},
		{name: "bad scanner", policy: Policy{Severity: []string{"HIGH"}, Scanners: []string{"vulns"}}, wantErr: `scanner "vulns"`},
		{name: "ignore without reason", policy: Policy{Severity: []string{"HIGH"}, Scanners: []string{"vuln"}, Ignore: []Ignore{{ID: "CVE-1", Where: "hoist.yaml:7"}}}, wantErr: "hoist.yaml:7: a scan ignore entry needs an id and a reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// An ignore entry with no expiry would hold forever, unreviewed.
func TestValidateRequiresExpiry(t *testing.T) {
	p := Policy{Severity: []string{"HIGH"}, Scanners: []string{"vuln"}, Ignore: []Ignore{{ID: "CVE-2099-0001", Reason: "r", Where: "hoist.yaml:9"}}}
	err := p.Validate()
	if err == nil || err.Error() != "hoist.yaml:9: scan ignore CVE-2099-0001 has no expiry: add expires: YYYY-MM-DD, the day it is reviewed again" {
		t.Fatalf("err = %v", err)
	}
	p.Ignore[0].Expires = day("2027-01-31")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}
