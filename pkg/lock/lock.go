// Package lock is the spine of a Hoist run: one JSON record, usually
// build/hoist/lock.json, that every stage reads and extends. Images writes the
// built images; Test, Scan, Push and Promote add their results to them.
//
// Writes are atomic (temporary file, fsync, rename) and serialised by an
// advisory file lock, so a crash never leaves half a record and two stages
// in two processes never lose each other's results.
package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hoistci/hoist/pkg/readlimit"
)

// SchemaVersion is the version of the lock file format.
const SchemaVersion = 1

// ErrNoLock means the lock file does not exist yet (Images has not run).
var ErrNoLock = errors.New("no lock file: run the Images target first")

// Lock is the record of one run.
type Lock struct {
	Schema   int       `json:"schema"`
	Project  string    `json:"project"`
	Version  string    `json:"version"`            // VERSION as read, e.g. 1.2.3
	Revision string    `json:"revision,omitempty"` // git commit the images were built from
	Created  time.Time `json:"created"`
	Images   []Image   `json:"images"`
	// Shard, on a CI shard's lock (its fragment), says which part of the
	// plan this run built; the join merges the fragments (package shard).
	Shard *Shard `json:"shard,omitempty"`
}

// Shard is one CI shard's place in the plan.
type Shard struct {
	Index  int      `json:"index"` // 1-based
	Count  int      `json:"count"`
	Images []string `json:"images"` // the images the plan gave it
}

// Image is one built image and everything later stages learned about it.
type Image struct {
	Name  string            `json:"name"`            // e.g. demo-cpu-py3.12
	Ref   string            `json:"ref"`             // local reference in the engine, e.g. hoist/demo-cpu-py3.12:1.2.3
	Entry map[string]string `json:"entry,omitempty"` // matrix entry, e.g. {python: "3.12", runtime: cpu}
	// ImageID is the engine's handle for the image: the config digest on
	// the classic store, the manifest (or index) digest on the containerd
	// store. Test and Scan record the ImageID they ran on.
	ImageID string `json:"image_id"`
	// ConfigDigest and DiffIDs are the image's identity, the same on both
	// stores: the config names the diff_ids, which are the digests of the
	// uncompressed layers. The digest gate compares these, and a pushed
	// manifest must name this config.
	ConfigDigest string   `json:"config_digest"`
	DiffIDs      []string `json:"diff_ids"`
	// Store is the engine store that built the image: classic or
	// containerd (empty in locks written before it was recorded: classic).
	Store      string            `json:"store,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	InputsHash string            `json:"inputs_hash"`
	Built      time.Time         `json:"built"`
	// BuildMillis is how long the last solve of these inputs took; an
	// unchanged image keeps it. The shard plan balances by it.
	BuildMillis int64    `json:"build_ms,omitempty"`
	Skipped     bool     `json:"skipped,omitempty"` // inputs unchanged: no solve was run
	Test        *Test    `json:"test,omitempty"`
	Cluster     *Test    `json:"cluster_test,omitempty"`
	Scan        *Scan    `json:"scan,omitempty"`
	Pushed      []Pushed `json:"pushed,omitempty"`
	// Attestations and Signature are the signed proofs Push attached to
	// the pushed manifest.
	Attestations []Attestation `json:"attestations,omitempty"`
	Signature    *Signature    `json:"signature,omitempty"`
	// Platforms is set for an image built for the platforms hoist.yaml
	// chose: one record per platform, in the order listed. The fields above
	// then describe its primary platform's image (the engine's own when
	// listed, else the first), the one at Ref; Test and Scan above pass
	// only when they passed on every platform.
	Platforms []Platform `json:"platforms,omitempty"`
}

// Attestation is one signed statement attached to a pushed manifest.
type Attestation struct {
	Kind          string    `json:"kind"` // provenance, tested or sbom
	PredicateType string    `json:"predicate_type"`
	Subject       string    `json:"subject"`  // repository@sha256:…
	Referrer      string    `json:"referrer"` // the OCI referrer's digest
	Tag           string    `json:"tag"`      // cosign's repository:sha256-HEX.att
	Key           string    `json:"key"`      // the signing key's id
	At            time.Time `json:"at"`
}

// Signature is the image signature Push attached (cosign's layout).
type Signature struct {
	Subject string    `json:"subject"`
	Tag     string    `json:"tag"` // repository:sha256-HEX.sig
	Key     string    `json:"key"`
	At      time.Time `json:"at"`
}

// Test records one test run of an image.
type Test struct {
	Passed   bool      `json:"passed"`
	ExitCode int       `json:"exit_code"`
	Log      string    `json:"log,omitempty"` // path of the saved log
	Duration string    `json:"duration,omitempty"`
	At       time.Time `json:"at"`
	ImageID  string    `json:"image_id"` // the image that was tested
}

// Scan records one vulnerability scan of an image.
type Scan struct {
	Passed   bool      `json:"passed"`
	Findings []Finding `json:"findings,omitempty"` // those that breach the policy and those ignored
	Reports  []string  `json:"reports,omitempty"`  // paths of the report files
	At       time.Time `json:"at"`
	ImageID  string    `json:"image_id"`
	Scanner  string    `json:"scanner,omitempty"` // e.g. trivy 0.58.0
	DB       string    `json:"db,omitempty"`      // the vulnerability DB used, e.g. trivy-db v2, updated 2026-11-20 06:00 UTC
	Error    string    `json:"error,omitempty"`   // why the scan could not run; such a scan never passed
	SBOM     *SBOM     `json:"sbom,omitempty"`    // made by the same Trivy run, when asked for
}

// SBOM is an image's software bill of materials as the scan wrote it.
type SBOM struct {
	Path   string `json:"path"`
	Format string `json:"format"` // cyclonedx or spdx-json
	SHA256 string `json:"sha256"` // of the file
}

// Finding is one vulnerability or secret found in an image.
type Finding struct {
	ID        string `json:"id"`
	Package   string `json:"package,omitempty"`
	Installed string `json:"installed,omitempty"`
	Fixed     string `json:"fixed,omitempty"`
	Severity  string `json:"severity"`
	Ignored   string `json:"ignored,omitempty"` // the reason, when an ignore entry applied
	Blocking  bool   `json:"blocking"`
}

// Pushed is one reference written to a registry.
type Pushed struct {
	Ref    string    `json:"ref"`    // repository:tag
	Digest string    `json:"digest"` // manifest digest
	At     time.Time `json:"at"`
}

// Find returns the image with the given name.
func (l *Lock) Find(name string) (*Image, bool) {
	for i := range l.Images {
		if l.Images[i].Name == name {
			return &l.Images[i], true
		}
	}
	return nil, false
}

// Put adds img, replacing an image of the same name, and keeps images sorted.
func (l *Lock) Put(img Image) {
	if cur, ok := l.Find(img.Name); ok {
		*cur = img
	} else {
		l.Images = append(l.Images, img)
	}
	sort.Slice(l.Images, func(i, j int) bool { return l.Images[i].Name < l.Images[j].Name })
}

// Read loads the lock file at path.
func Read(path string) (*Lock, error) {
	b, err := readlimit.ReadFile(path, "lock file", readlimit.Lock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoLock)
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: not a Hoist lock file (%v): delete it and run the Images target again", path, err)
	}
	if l.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s: lock schema %d, this Hoist reads %d: run the Images target again", path, l.Schema, SchemaVersion)
	}
	return &l, nil
}

// waitingHook, when set (tests), is what UpdateContext's Acquire calls on
// finding the lock held.
var waitingHook func()

// Update is UpdateContext for callers that have no context: it waits for
// the file lock for as long as another run holds it.
func Update(path string, fn func(*Lock) error) error {
	return UpdateContext(context.Background(), path, fn)
}

// UpdateContext reads the lock at path (an empty one if missing), lets fn
// change it and writes it back atomically, holding an exclusive file lock
// throughout. Waiting for that lock ends when ctx does (mage -t, Ctrl-C),
// with nothing read or written. When fn fails nothing is written.
func UpdateContext(ctx context.Context, path string, fn func(*Lock) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	fl, err := Acquire(ctx, path+".lck", waitingHook)
	if err != nil {
		return err
	}
	defer fl.Release()
	l, err := Read(path)
	if errors.Is(err, ErrNoLock) {
		l = &Lock{Schema: SchemaVersion}
	} else if err != nil {
		return err
	}
	if err := fn(l); err != nil {
		return err
	}
	return Write(path, l)
}

// Write stores l at path atomically.
func Write(path string, l *Lock) error {
	l.Schema = SchemaVersion
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding lock file: %w", err)
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// WriteFileAtomic writes data to a temporary file beside path and renames it
// into place, so readers see the old content or the new, never a part.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}
