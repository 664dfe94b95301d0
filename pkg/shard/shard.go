// Package shard splits a release's images over CI shards and joins what
// the shards did into one release. The CI system's own fan-out (a GitHub
// Actions matrix) runs the shards; Hoist only plans them and checks the
// join.
//
// A shard builds, tests and scans its images, pushes them by digest only
// and keeps its lock file as its fragment. The join accepts the fragments
// only when together they hold every image of the plan exactly once, all
// built from one commit at one version and all passed; only then are tags
// written, all of them, as one release.
package shard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Part is one shard of a plan.
type Part struct {
	Index  int      // 1-based
	Count  int      // shards in the plan
	Images []string // sorted
	Millis int64    // the build time the last lock recorded for them
}

// Spec is this shard's place: "I/K".
func (p Part) Spec() string { return fmt.Sprintf("%d/%d", p.Index, p.Count) }

// Plan splits images over at most k shards, balanced by the build times
// the last lock recorded (millis; an image with none counts as the mean of
// those known, or 1 when none is): the longest first, each to the shard
// with the least so far (the LPT rule: within 4/3 of the best split). It
// never makes an empty shard.
func Plan(images []string, millis map[string]int64, k int) []Part {
	if k > len(images) {
		k = len(images)
	}
	if k < 1 {
		return nil
	}
	var sum, known int64
	for _, n := range images {
		if ms := millis[n]; ms > 0 {
			sum += ms
			known++
		}
	}
	guess := int64(1)
	if known > 0 {
		guess = max(1, sum/known)
	}
	type job struct {
		name string
		ms   int64
	}
	jobs := make([]job, len(images))
	for i, n := range images {
		jobs[i] = job{n, cmp.Or(max(0, millis[n]), guess)}
	}
	slices.SortStableFunc(jobs, func(a, b job) int {
		if c := cmp.Compare(b.ms, a.ms); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	parts := make([]Part, k)
	for i := range parts {
		parts[i] = Part{Index: i + 1, Count: k}
	}
	for _, j := range jobs {
		least := 0
		for i := range parts {
			if parts[i].Millis < parts[least].Millis || (parts[i].Millis == parts[least].Millis && len(parts[i].Images) < len(parts[least].Images)) {
				least = i
			}
		}
		parts[least].Images = append(parts[least].Images, j.name)
		parts[least].Millis += j.ms
	}
	for i := range parts {
		slices.Sort(parts[i].Images)
	}
	return parts
}

// ParseSpec reads "I/K" (HOIST_SHARD).
func ParseSpec(s string) (index, count int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "/")
	i, ierr := strconv.Atoi(a)
	k, kerr := strconv.Atoi(b)
	if !ok || ierr != nil || kerr != nil || k < 1 || i < 1 || i > k || k > MaxShards {
		return 0, 0, fmt.Errorf("shard %q: want I/K with 1 ≤ I ≤ K ≤ %d, as the plan target prints it (e.g. 2/3)", s, MaxShards)
	}
	return i, k, nil
}

// MaxShards is GitHub Actions' limit of jobs in one matrix.
const MaxShards = 256

// Matrix is the GitHub Actions matrix for parts: one include entry per
// shard, with the shard's spec and its images (HOIST_SHARD and
// HOIST_IMAGES of the shard's job).
func Matrix(parts []Part) ([]byte, error) {
	type entry struct {
		Shard  string `json:"shard"`
		Images string `json:"images"`
	}
	m := struct {
		Include []entry `json:"include"`
	}{Include: []entry{}}
	for _, p := range parts {
		m.Include = append(m.Include, entry{p.Spec(), strings.Join(p.Images, ",")})
	}
	return json.Marshal(m)
}
