package lock

import "time"

// Platform is one platform's image of an image built for several: where it
// is in the engine, its identity, and what Test and Scan found on it.
type Platform struct {
	Platform string `json:"platform"` // e.g. linux/arm64
	// Ref is where the engine keeps it: the image's Ref for its primary
	// platform, REF-OS-ARCH[-VARIANT] for the others (plan.PlatformRef).
	Ref          string   `json:"ref"`
	ImageID      string   `json:"image_id"`
	ConfigDigest string   `json:"config_digest"`
	DiffIDs      []string `json:"diff_ids"`
	// InputsHash is this platform's own (plan.PlatformInputs), the label
	// its image carries.
	InputsHash string `json:"inputs_hash"`
	Skipped    bool   `json:"skipped,omitempty"`
	Test       *Test  `json:"test,omitempty"`
	Scan       *Scan  `json:"scan,omitempty"`
	// Manifest is the digest of the manifest Push uploaded for this
	// platform, which the image index the tags name lists.
	Manifest string `json:"manifest,omitempty"`
}

// FindPlatform returns img's record of platform p.
func (img *Image) FindPlatform(p string) (*Platform, bool) {
	for i := range img.Platforms {
		if img.Platforms[i].Platform == p {
			return &img.Platforms[i], true
		}
	}
	return nil, false
}

// PlatformsTest is the test record of an image with platforms as a whole,
// for the stages that read one (the digest gate, Push): passed only when
// every platform's own image passed, naming the first failure's log and
// exit code; nil while a platform is untested.
func (img *Image) PlatformsTest() *Test {
	if len(img.Platforms) == 0 {
		return img.Test
	}
	sum := &Test{Passed: true, ImageID: img.ImageID}
	var took time.Duration
	for _, p := range img.Platforms {
		t := p.Test
		if t == nil || t.ImageID != p.ImageID {
			return nil
		}
		if t.At.After(sum.At) {
			sum.At = t.At
		}
		if d, err := time.ParseDuration(t.Duration); err == nil {
			took += d
		}
		if sum.Log == "" || (sum.Passed && !t.Passed) {
			sum.Log, sum.ExitCode = t.Log, t.ExitCode
		}
		sum.Passed = sum.Passed && t.Passed
	}
	sum.Duration = took.String()
	return sum
}

// PlatformsScan is the scan record of an image with platforms as a whole:
// passed only when every platform's own image was scanned and passed, with
// every platform's findings (each once) and reports, and the primary
// platform's SBOM; nil while a platform is unscanned.
func (img *Image) PlatformsScan() *Scan {
	if len(img.Platforms) == 0 {
		return img.Scan
	}
	sum := &Scan{Passed: true, ImageID: img.ImageID}
	seen := map[Finding]bool{}
	for _, p := range img.Platforms {
		s := p.Scan
		if s == nil || s.ImageID != p.ImageID {
			return nil
		}
		sum.Passed = sum.Passed && s.Passed
		if s.At.After(sum.At) {
			sum.At = s.At
		}
		if sum.Scanner == "" {
			sum.Scanner, sum.DB = s.Scanner, s.DB
		}
		if s.Error != "" && sum.Error == "" {
			sum.Error = p.Platform + ": " + s.Error
		}
		for _, f := range s.Findings {
			if !seen[f] {
				seen[f] = true
				sum.Findings = append(sum.Findings, f)
			}
		}
		sum.Reports = append(sum.Reports, s.Reports...)
		if p.ImageID == img.ImageID && s.SBOM != nil {
			sum.SBOM = s.SBOM
		}
	}
	return sum
}
