package lock

import "testing"

func TestPlatformsTestAndScan(t *testing.T) {
	pass := func(id string) *Test { return &Test{Passed: true, ImageID: id, Log: "log-" + id, Duration: "1s"} }
	fail := func(id string) *Test {
		return &Test{Passed: false, ExitCode: 3, ImageID: id, Log: "log-" + id, Duration: "2s"}
	}
	tests := []struct {
		name     string
		amd, arm *Test
		want     *Test // nil: no record for the image as a whole
	}{
		{name: "both passed", amd: pass("a"), arm: pass("b"), want: &Test{Passed: true, ImageID: "a", Log: "log-a", Duration: "2s"}},
		{name: "arm64 failed", amd: pass("a"), arm: fail("b"), want: &Test{Passed: false, ExitCode: 3, ImageID: "a", Log: "log-b", Duration: "3s"}},
		{name: "arm64 untested", amd: pass("a"), arm: nil},
		{name: "arm64 tested on an older build", amd: pass("a"), arm: pass("old")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := Image{Name: "x", ImageID: "a", Platforms: []Platform{
				{Platform: "linux/amd64", ImageID: "a", Test: tt.amd},
				{Platform: "linux/arm64", ImageID: "b", Test: tt.arm},
			}}
			got := img.PlatformsTest()
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("PlatformsTest = %+v, want %+v", got, tt.want)
			}
			if got != nil && (got.Passed != tt.want.Passed || got.ExitCode != tt.want.ExitCode || got.ImageID != tt.want.ImageID || got.Log != tt.want.Log || got.Duration != tt.want.Duration) {
				t.Errorf("PlatformsTest = %+v, want %+v", got, tt.want)
			}
		})
	}
	img := Image{Name: "x", ImageID: "a", Platforms: []Platform{
		{Platform: "linux/amd64", ImageID: "a", Scan: &Scan{Passed: true, ImageID: "a", Reports: []string{"r-a"}, SBOM: &SBOM{Path: "sbom-a"}}},
		{Platform: "linux/arm64", ImageID: "b", Scan: &Scan{Passed: false, ImageID: "b", Reports: []string{"r-b"}, Findings: []Finding{{ID: "CVE-1", Blocking: true}}}},
	}}
	s := img.PlatformsScan()
	if s == nil || s.Passed || len(s.Findings) != 1 || len(s.Reports) != 2 || s.SBOM == nil || s.SBOM.Path != "sbom-a" || s.ImageID != "a" {
		t.Errorf("PlatformsScan = %+v, want failed with both reports, arm64's finding and amd64's SBOM", s)
	}
	img.Platforms[1].Scan = nil
	if s := img.PlatformsScan(); s != nil {
		t.Errorf("PlatformsScan with arm64 unscanned = %+v, want nil", s)
	}
}
