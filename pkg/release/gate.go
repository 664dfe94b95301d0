package release

import (
	"fmt"
	"strings"

	"github.com/hoistci/hoist/pkg/lock"
)

// Gate is the last check before anything is pushed: the lock file must
// describe this commit and this version, and every image in it must have
// passed its test (and its scan and cluster test, where those ran) as the
// very image that was built. One failing image stops the push of all.
func Gate(lockPath, version, commit string) error {
	l, err := lock.Read(lockPath)
	if err != nil {
		return err
	}
	if len(l.Images) == 0 {
		return fmt.Errorf("%s lists no images: run the Images and Test stages first", lockPath)
	}
	if l.Version != version {
		return fmt.Errorf("%s is for version %s, this release is %s: run the Images and Test stages for %s", lockPath, l.Version, version, version)
	}
	if l.Revision != "" && commit != "" && l.Revision != commit {
		return fmt.Errorf("%s was built from commit %s, this release is at %s: build and test this commit", lockPath, short(l.Revision), short(commit))
	}
	var bad []string
	for _, img := range l.Images {
		switch {
		case img.Test == nil:
			bad = append(bad, img.Name+" was not tested")
		case !img.Test.Passed:
			bad = append(bad, img.Name+" failed its test")
		case img.Test.ImageID != img.ImageID:
			bad = append(bad, img.Name+" changed after its test")
		case img.Scan != nil && !img.Scan.Passed:
			bad = append(bad, img.Name+" failed its scan")
		case img.Scan != nil && img.Scan.ImageID != img.ImageID:
			bad = append(bad, img.Name+" changed after its scan")
		case img.Cluster != nil && !img.Cluster.Passed:
			bad = append(bad, img.Name+" failed its cluster test")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("nothing pushed: %d of %d images not fit to ship: %s", len(bad), len(l.Images), strings.Join(bad, "; "))
	}
	return nil
}
