package matrix

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func strs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.String()
	}
	return out
}

// values is an axis of n distinct values.
func values(name string, n int) Axis {
	a := Axis{Name: name}
	for i := range n {
		a.Values = append(a.Values, strconv.Itoa(i))
	}
	return a
}

func TestExpand(t *testing.T) {
	py := Axis{Name: "python", Values: []string{"3.11", "3.12"}}
	rt := Axis{Name: "runtime", Values: []string{"cpu", "cuda"}}
	tests := []struct {
		name    string
		axes    []Axis
		include []map[string]string
		exclude []map[string]string
		want    []string
		wantErr string
	}{
		{name: "one axis", axes: []Axis{py}, want: []string{"python=3.11", "python=3.12"}},
		{name: "product in axis order", axes: []Axis{py, rt}, want: []string{
			"python=3.11,runtime=cpu", "python=3.11,runtime=cuda", "python=3.12,runtime=cpu", "python=3.12,runtime=cuda"}},
		{name: "exclude", axes: []Axis{py, rt}, exclude: []map[string]string{{"python": "3.11", "runtime": "cuda"}}, want: []string{
			"python=3.11,runtime=cpu", "python=3.12,runtime=cpu", "python=3.12,runtime=cuda"}},
		{name: "exclude by one key", axes: []Axis{py, rt}, exclude: []map[string]string{{"runtime": "cuda"}}, want: []string{
			"python=3.11,runtime=cpu", "python=3.12,runtime=cpu"}},
		{name: "include new entry", axes: []Axis{py, rt}, include: []map[string]string{{"python": "3.13", "runtime": "cpu"}}, want: []string{
			"python=3.11,runtime=cpu", "python=3.11,runtime=cuda", "python=3.12,runtime=cpu", "python=3.12,runtime=cuda", "python=3.13,runtime=cpu"}},
		{name: "include extends matching", axes: []Axis{py, rt}, include: []map[string]string{{"runtime": "cuda", "cuda": "12.4"}}, want: []string{
			"python=3.11,runtime=cpu", "cuda=12.4,python=3.11,runtime=cuda", "python=3.12,runtime=cpu", "cuda=12.4,python=3.12,runtime=cuda"}},
		{name: "include duplicate is no-op", axes: []Axis{py}, include: []map[string]string{{"python": "3.12"}}, want: []string{"python=3.11", "python=3.12"}},
		{name: "excluded then included stays", axes: []Axis{py, rt}, exclude: []map[string]string{{"runtime": "cuda"}}, include: []map[string]string{{"python": "3.12", "runtime": "cuda"}}, want: []string{
			"python=3.11,runtime=cpu", "python=3.12,runtime=cpu", "python=3.12,runtime=cuda"}},
		{name: "empty axis", axes: []Axis{{Name: "python"}}, wantErr: `axis "python" has no values`},
		{name: "duplicate axis", axes: []Axis{py, py}, wantErr: "given twice"},
		{name: "exclude names no axis", axes: []Axis{py}, exclude: []map[string]string{{"pyton": "3.11"}}, wantErr: "names no axis"},
		{name: "empty include", axes: []Axis{py}, include: []map[string]string{{}}, wantErr: "include entry 1 is empty"},
		{name: "exclude leaves nothing", axes: []Axis{py, rt}, exclude: []map[string]string{{"runtime": "cpu"}, {"runtime": "cuda"}}, wantErr: "the matrix leaves no entry: every combination of python, runtime is excluded"},
		{name: "product over the limit", axes: []Axis{values("a", 100), values("b", 100)}, wantErr: "the axes (a, b) give more than 4096 entries, the limit"},
		{name: "includes over the limit", axes: []Axis{values("a", 4096)}, include: []map[string]string{{"a": "new"}}, wantErr: "the matrix gives 4097 entries, more than the limit of 4096"},
		{name: "at the limit", axes: []Axis{values("a", 64), values("b", 64)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(tt.axes, tt.include, tt.exclude)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if len(got) != MaxEntries {
					t.Fatalf("got %d entries, want %d", len(got), MaxEntries)
				}
				return
			}
			if !reflect.DeepEqual(strs(got), tt.want) {
				t.Fatalf("got  %v\nwant %v", strs(got), tt.want)
			}
		})
	}
}
