// Package matrix expands axes into entries, as the matrix of a CI workflow
// does: the product of the axes in the order they were written, then include
// entries, then exclude filters.
package matrix

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Axis is one dimension with its values.
type Axis struct {
	Name   string
	Values []string
}

// MaxEntries bounds the images one run plans (after expansion, across all
// images): far above any real matrix, low enough that a hostile or
// mistaken config is refused before it costs memory or an afternoon of
// builds. docs/config.md states it.
const MaxEntries = 4096

// ErrNoEntries is returned when include and exclude leave nothing: an
// image that silently builds nothing is a mistake, not a choice.
var ErrNoEntries = errors.New("the matrix leaves no entry")

// Entry is one combination: axis name -> value (include may add keys).
type Entry map[string]string

// String writes the entry as k=v pairs in key order, e.g. python=3.12,runtime=cpu.
func (e Entry) String() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + e[k])
	}
	return b.String()
}

func (e Entry) matches(filter map[string]string) bool {
	for k, v := range filter {
		if e[k] != v {
			return false
		}
	}
	return true
}

// Expand returns the entries of axes, with include and exclude applied.
//
// An include whose axis keys all match existing entries adds its other keys
// to those entries; any other include is a new entry. An exclude removes
// every entry that matches all of its keys. Excludes apply to the product
// only, so an entry that is both included and excluded stays, as in GitHub
// Actions. An include or exclude naming no axis at all is an error, since it
// would match everything.
func Expand(axes []Axis, include, exclude []map[string]string) ([]Entry, error) {
	names := map[string]bool{}
	for _, a := range axes {
		if a.Name == "" {
			return nil, fmt.Errorf("an axis has no name")
		}
		if names[a.Name] {
			return nil, fmt.Errorf("axis %q is given twice", a.Name)
		}
		if len(a.Values) == 0 {
			return nil, fmt.Errorf("axis %q has no values", a.Name)
		}
		names[a.Name] = true
	}
	// Refuse before expanding: the product is what would cost the memory.
	product := 1
	for _, a := range axes {
		if product *= len(a.Values); product > MaxEntries {
			return nil, fmt.Errorf("the axes (%s) give more than %d entries, the limit: split the image or shorten an axis", axisList(axes), MaxEntries)
		}
	}
	entries := []Entry{{}}
	for _, a := range axes {
		next := make([]Entry, 0, len(entries)*len(a.Values))
		for _, e := range entries {
			for _, v := range a.Values {
				n := make(Entry, len(e)+1)
				for k, x := range e {
					n[k] = x
				}
				n[a.Name] = v
				next = append(next, n)
			}
		}
		entries = next
	}
	for i, ex := range exclude {
		if !namesAxis(ex, names) {
			return nil, fmt.Errorf("exclude entry %d names no axis (axes: %s)", i+1, axisList(axes))
		}
		kept := entries[:0]
		for _, e := range entries {
			if !e.matches(ex) {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	for i, inc := range include {
		if len(inc) == 0 {
			return nil, fmt.Errorf("include entry %d is empty", i+1)
		}
		axisPart, extra := map[string]string{}, map[string]string{}
		for k, v := range inc {
			if names[k] {
				axisPart[k] = v
			} else {
				extra[k] = v
			}
		}
		extended := false
		if len(axisPart) > 0 && len(extra) > 0 {
			for _, e := range entries {
				if e.matches(axisPart) {
					for k, v := range extra {
						e[k] = v
					}
					extended = true
				}
			}
		}
		if extended {
			continue
		}
		n := Entry{}
		for k, v := range inc {
			n[k] = v
		}
		dup := false
		for _, e := range entries {
			if e.String() == n.String() {
				dup = true
				break
			}
		}
		if !dup {
			entries = append(entries, n)
		}
	}
	if len(entries) > MaxEntries {
		return nil, fmt.Errorf("the matrix gives %d entries, more than the limit of %d: split the image or shorten an axis", len(entries), MaxEntries)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: every combination of %s is excluded and nothing is included: remove an exclude, or the image", ErrNoEntries, axisList(axes))
	}
	return entries, nil
}

func namesAxis(m map[string]string, names map[string]bool) bool {
	for k := range m {
		if names[k] {
			return true
		}
	}
	return false
}

func axisList(axes []Axis) string {
	s := make([]string, len(axes))
	for i, a := range axes {
		s[i] = a.Name
	}
	return strings.Join(s, ", ")
}
